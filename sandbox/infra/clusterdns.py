"""The sandbox's cluster DNS (the CoreDNS stand-in): authoritative, UDP and TCP, loopback only.

Pods resolve the names of their dependencies through it, as EKS pods resolve
through CoreDNS: the RDS endpoint (`harmonyflow-db.<id>.us-west-2.rds.amazonaws.com`)
and the ElastiCache configuration endpoint are names whose records flip on a
failover, so a client that cached an address, or resolved once at start, meets
the failover the way it would on AWS.

The server answers only for the zones it serves and never recurses or forwards:
the sandbox sends nothing off this machine, so a name outside them is REFUSED
rather than looked up elsewhere. The answer is a pure function of the query,
the record table and the zones (`answer`, `respond`); the loops here only move
bytes. Records carry a TTL of five seconds by default because that is what the
resolvers in front of the pods see on AWS: the Aurora DB admin handbook ("DNS
caching") says "Aurora DNS zones use a short Time-To-Live (TTL) of five
seconds", RDS Multi-AZ endpoints behave the same, and the AWS SDK for Java
guide recommends a JVM DNS TTL of 5 s for AWS endpoints for that reason.

Every Service's name is here too (`sandbox.infra.servicedns`, CoreDNS's kubernetes
plugin): its ClusterIP, a headless Service's endpoints, or an ExternalName Service's
CNAME, which the server follows only as far as its own zones go (it never recurses).

Chaos Mesh's DNSChaos is answered here too, as its chaos DNS server (CoreDNS with
the k8s_dns_chaos plugin) answers it: per client (the pod IP, which the pod
network gives every pod's packets) and per name pattern (`*` and `?`), `error`
is SERVFAIL and `random` an A record with a random address. The sandbox's random
addresses are in 127.66.0.0/16, where nothing listens: a real random address
would send traffic off the machine.

Negative answers carry no SOA record: without one a resolver must not cache
the NXDOMAIN (RFC 2308, section 5), so a name registered a moment later is
found at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import ipaddress
import logging
import random
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from sandbox.cni.faults import DnsFault
from sandbox.infra.supervisor import AddressInUseError, Endpoint, InfraError

log = logging.getLogger(__name__)

DNS_PORT = 53
DEFAULT_ENDPOINT = Endpoint("127.0.3.53", DNS_PORT)
DEFAULT_TTL = 5  # seconds, as Route 53 serves RDS/Aurora endpoints (see the module docstring)
SERVED_ZONES: tuple[str, ...] = ("amazonaws.com.", "cluster.local.")
UDP_PAYLOAD = 512  # RFC 1035's limit for a query without EDNS
EDNS_PAYLOAD = 1232  # the DNS flag day 2020 default for what we offer and send over UDP
TCP_MAX = 65535
TCP_IDLE_SECONDS = 5.0  # RFC 7766 section 6.2.3: idle timeouts of seconds, not minutes
MAX_TCP_CONNECTIONS = 64
STOP_WAIT_SECONDS = 5.0
MAX_CNAME_CHAIN = 8  # a longer chain (or a loop) ends where it stands
BIND_ATTEMPTS = 5  # port 0: UDP picks the port, TCP may find it taken; try another
RANDOM_ANSWERS = ipaddress.IPv4Network("127.66.0.0/16")  # DNSChaos `random`: nothing listens
_HEADER = struct.Struct("!HH")  # id, flags
_OPCODE_BITS = 0x7800


# ---- the record table ----


class NameRecords(Protocol):
    """Where a backing service publishes its endpoint's name (a `ClusterDns`, or a test's
    stand-in that records the flips)."""

    def set(self, name: str, addresses: Iterable[str], ttl: int = ...) -> None: ...


@dataclass(frozen=True)
class Record:
    """The A records of one name: several addresses (an ElastiCache configuration endpoint
    resolves to every node), one TTL; or, with `alias`, its CNAME (an ExternalName
    Service) and no address."""

    addresses: tuple[str, ...]
    ttl: int = DEFAULT_TTL
    alias: str = ""


def domain_name(name: str | dns.name.Name) -> dns.name.Name:
    """`Harmonyflow-DB.x.rds.amazonaws.com` and `...amazonaws.com.` are the same key."""
    parsed = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
    return parsed.canonicalize()


class RecordTable:
    """Names to A records; changes take effect with the next query (there is no zone serial)."""

    def __init__(self) -> None:
        self._records: dict[dns.name.Name, Record] = {}

    def set(self, name: str, addresses: Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        """Replace the name's records; raises ValueError for a non-IPv4 address or no address."""
        checked = tuple(str(ipaddress.IPv4Address(address)) for address in addresses)
        if not checked:
            raise ValueError(f"{name}: at least one address (remove() deletes a name)")
        if ttl < 0:
            raise ValueError(f"{name}: the TTL must not be negative, not {ttl}")
        self._records[domain_name(name)] = Record(checked, ttl)

    def set_alias(self, name: str, target: str, ttl: int = DEFAULT_TTL) -> None:
        """Make the name a CNAME of `target` (an absolute name); raises ValueError for a bad one."""
        if ttl < 0:
            raise ValueError(f"{name}: the TTL must not be negative, not {ttl}")
        self._records[domain_name(name)] = Record((), ttl, domain_name(target).to_text())

    def remove(self, name: str) -> bool:
        """Forget the name (it answers NXDOMAIN from now on); False if it was not there."""
        return self._records.pop(domain_name(name), None) is not None

    def lookup(self, name: str | dns.name.Name) -> Record | None:
        return self._records.get(domain_name(name))

    def view(self) -> Mapping[dns.name.Name, Record]:
        return MappingProxyType(self._records)


# ---- the decision ----


def served_zones(zones: Iterable[str]) -> tuple[dns.name.Name, ...]:
    return tuple(domain_name(zone) for zone in zones)


def answer(
    query: dns.message.Message,
    records: Mapping[dns.name.Name, Record],
    zones: Sequence[dns.name.Name],
) -> dns.message.Message:
    """The response to a parsed query: authoritative (AA), never recursive (no RA)."""
    if dns.opcode.from_flags(query.flags) != dns.opcode.QUERY:
        return _header_response(query.id, query.flags, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return _header_response(query.id, query.flags, dns.rcode.FORMERR)
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.flags &= ~dns.flags.RA
    question = query.question[0]
    name = domain_name(question.name)
    if question.rdclass != dns.rdataclass.IN or not any(name.is_subdomain(z) for z in zones):
        response.set_rcode(dns.rcode.REFUSED)
        return response
    response.flags |= dns.flags.AA
    owner: dns.name.Name = question.name
    record = records.get(name)
    seen = {name}
    for _ in range(MAX_CNAME_CHAIN):
        if record is None or not record.alias:
            break
        response.answer.append(
            dns.rrset.from_text_list(
                owner, record.ttl, dns.rdataclass.IN, dns.rdatatype.CNAME, [record.alias]
            )
        )
        if question.rdtype == dns.rdatatype.CNAME:
            return response
        owner = dns.name.from_text(record.alias)
        target = domain_name(owner)
        if target in seen or not any(target.is_subdomain(z) for z in zones):
            return response  # a loop; or no recursion: the client's resolver follows it
        seen.add(target)
        record = records.get(target)
    if record is None:
        response.set_rcode(dns.rcode.NXDOMAIN)  # of the last name of the chain (RFC 6604)
    elif record.addresses and question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        response.answer.append(
            dns.rrset.from_text_list(
                owner, record.ttl, dns.rdataclass.IN, dns.rdatatype.A, record.addresses
            )
        )
    return response  # any other type of a known name: NOERROR with no answer (NODATA)


def pattern_matches(pattern: str, name: str) -> bool:
    """Chaos Mesh's DNSChaos patterns: a name, with `?` for one character and `*` for any.

    >>> pattern_matches("chaos-mesh.*", "chaos-mesh.org.")
    True
    >>> pattern_matches("github.?om", "github.com")
    True
    >>> pattern_matches("google.com", "mail.google.com")
    False
    """
    return fnmatch.fnmatchcase(name.rstrip(".").lower(), pattern.rstrip(".").lower())


def dns_fault_for(faults: Sequence[DnsFault], client: str, name: dns.name.Name) -> DnsFault | None:
    """The first DNSChaos fault (by key) that applies to `client` asking for `name`."""
    text = name.to_text()
    for fault in sorted(faults, key=lambda f: f.key):
        if client not in fault.client_ips:
            continue
        if not fault.patterns or any(pattern_matches(p, text) for p in fault.patterns):
            return fault
    return None


def chaos_answer(
    query: dns.message.Message, fault: DnsFault, rng: random.Random
) -> dns.message.Message:
    """What Chaos Mesh's DNS server answers under `fault`: SERVFAIL, or a random A record
    (A and AAAA only are affected; a random AAAA is NODATA here)."""
    if fault.action == "error":
        response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    question = query.question[0]
    if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        address = RANDOM_ANSWERS[rng.randrange(1, RANDOM_ANSWERS.num_addresses - 1)]
        response.answer.append(
            dns.rrset.from_text_list(
                question.name, DEFAULT_TTL, dns.rdataclass.IN, dns.rdatatype.A, [str(address)]
            )
        )
    return response


@dataclass(frozen=True)
class Reply:
    """What to send back (None: drop the packet) and the name asked about, for the stats."""

    wire: bytes | None
    name: dns.name.Name | None = None
    rcode: dns.rcode.Rcode | None = None


def respond(
    wire: bytes,
    records: Mapping[dns.name.Name, Record],
    zones: Sequence[dns.name.Name],
    max_size: int | None = None,
    chaos: Callable[[dns.message.Message], dns.message.Message | None] | None = None,
) -> Reply:
    """Bytes in, bytes out. `max_size` None is TCP; over UDP the query's EDNS payload (or 512)
    bounds the reply, and a longer one is sent truncated (TC) for the client to retry on TCP.

    A packet whose header cannot be read, or that is itself a response, gets no reply:
    answering responses is how two servers loop.
    """
    try:
        query = dns.message.from_wire(wire)
    except dns.message.ShortHeader:
        return Reply(None)
    except (dns.exception.DNSException, ValueError, IndexError, struct.error):
        if len(wire) < _HEADER.size:
            return Reply(None)
        qid, flags = _HEADER.unpack_from(wire)
        if flags & dns.flags.QR:
            return Reply(None)
        formerr = _header_response(qid, flags, dns.rcode.FORMERR)
        return Reply(formerr.to_wire(), None, dns.rcode.FORMERR)
    if query.flags & dns.flags.QR:
        return Reply(None)
    response = (chaos(query) if chaos is not None else None) or answer(query, records, zones)
    name = domain_name(query.question[0].name) if len(query.question) == 1 else None
    limit = TCP_MAX if max_size is None else max_size
    if max_size is not None and query.edns >= 0:
        limit = max(UDP_PAYLOAD, min(query.payload, max_size))
    try:
        return Reply(response.to_wire(max_size=limit), name, response.rcode())
    except dns.exception.TooBig:
        response.answer.clear()
        response.flags |= dns.flags.TC
        return Reply(response.to_wire(max_size=limit), name, response.rcode())


def _header_response(qid: int, flags: int, rcode: dns.rcode.Rcode) -> dns.message.Message:
    """A reply with no question (RFC 1035 allows it for errors; dnspython's clients accept it)."""
    response = dns.message.Message(id=qid)
    opcode_and_rd = flags & (_OPCODE_BITS | dns.flags.RD)
    response.flags = dns.flags.QR | opcode_and_rd
    response.set_rcode(rcode)
    return response


# ---- the server ----


@dataclass(frozen=True)
class DnsStats:
    queries: int  # answered (every rcode), since start
    dropped: int  # malformed beyond a header, or responses sent to us
    tcp_connections: int  # open now


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDns) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        client = addr[0] if isinstance(addr[0], str) else ""
        wire = self.server.handle(data, max_size=EDNS_PAYLOAD, client=client)
        if wire is not None and self.transport is not None:
            self.transport.sendto(wire, addr)


class ClusterDns:
    """`dns = ClusterDns(); await dns.start(); dns.set("db.x.rds.amazonaws.com", ["127.0.3.11"])`.

    Tests pass another loopback endpoint (port 0 picks a free one, the same for
    UDP and TCP), so that they never meet a running sandbox's 127.0.3.53:53.
    """

    def __init__(
        self,
        endpoint: Endpoint = DEFAULT_ENDPOINT,
        zones: Iterable[str] = SERVED_ZONES,
        *,
        tcp_idle_seconds: float = TCP_IDLE_SECONDS,
        name: str = "cluster-dns",
    ) -> None:
        if not ipaddress.ip_address(endpoint.host).is_loopback:
            raise InfraError(f"{name}: {endpoint.host} is not a loopback address")
        self.endpoint = endpoint
        self.name = name
        self.records = RecordTable()
        self.zones = served_zones(zones)
        self._tcp_idle = tcp_idle_seconds
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._bound_port = endpoint.port
        self._counts: Counter[dns.name.Name] = Counter()
        self._queries = self._dropped = 0
        self._faults: tuple[DnsFault, ...] = ()
        self._rng = random.Random()

    # ---- records and stats ----

    def set(self, name: str, addresses: Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        self.records.set(name, addresses, ttl)

    def set_alias(self, name: str, target: str, ttl: int = DEFAULT_TTL) -> None:
        self.records.set_alias(name, target, ttl)

    def remove(self, name: str) -> bool:
        return self.records.remove(name)

    def lookup(self, name: str) -> Record | None:
        return self.records.lookup(name)

    def queries(self, name: str) -> int:
        """Queries about `name` answered since start (any type, any rcode)."""
        return self._counts[domain_name(name)]

    def stats(self) -> DnsStats:
        return DnsStats(self._queries, self._dropped, len(self._connections))

    @property
    def serving(self) -> bool:
        return self._udp is not None

    def set_faults(self, faults: Iterable[DnsFault]) -> None:
        """The DNSChaos faults in force (all of them: the previous set is replaced)."""
        self._faults = tuple(faults)

    @property
    def faults(self) -> tuple[DnsFault, ...]:
        return self._faults

    def handle(self, wire: bytes, max_size: int | None, client: str = "") -> bytes | None:
        reply = respond(wire, self.records.view(), self.zones, max_size, self._chaos_for(client))
        if reply.wire is None:
            self._dropped += 1
            return None
        self._queries += 1
        if reply.name is not None:
            self._counts[reply.name] += 1
        return reply.wire

    def _chaos_for(
        self, client: str
    ) -> Callable[[dns.message.Message], dns.message.Message | None] | None:
        if not self._faults or not client:
            return None

        def chaos(query: dns.message.Message) -> dns.message.Message | None:
            if len(query.question) != 1:
                return None
            question = query.question[0]
            if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.ANY):
                return None
            fault = dns_fault_for(self._faults, client, domain_name(question.name))
            return None if fault is None else chaos_answer(query, fault, self._rng)

        return chaos

    # ---- lifecycle ----

    async def start(self) -> None:
        """Listen on UDP and TCP; AddressInUseError when the address is taken, InfraError else."""
        for attempt in range(BIND_ATTEMPTS):
            await self._bind_udp()
            try:
                await self._bind_tcp()
                return
            except AddressInUseError:
                self._close_udp()
                if self.endpoint.port != 0 or attempt == BIND_ATTEMPTS - 1:
                    raise
                # port 0: the port UDP got is taken on TCP; ask for another
            except InfraError:
                self._close_udp()
                raise

    async def stop(self) -> None:
        """Close both sockets and every TCP connection; returns within a bounded time."""
        self._close_udp()
        server, self._tcp = self._tcp, None
        if server is not None:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_SECONDS)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), STOP_WAIT_SECONDS)

    async def _bind_udp(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.endpoint.host, self.endpoint.port)
            )
        except OSError as error:
            raise self._bind_error("UDP", error) from error
        self._udp = transport
        self._bound_port = int(transport.get_extra_info("sockname")[1])

    async def _bind_tcp(self) -> None:
        try:
            self._tcp = await asyncio.start_server(
                self._serve_tcp, self.endpoint.host, self._bound_port, reuse_address=True
            )
        except OSError as error:
            raise self._bind_error("TCP", error) from error
        self.endpoint = Endpoint(self.endpoint.host, self._bound_port)
        log.info("%s: serving %s on %s", self.name, ", ".join(map(str, self.zones)), self.endpoint)

    def _bind_error(self, transport: str, error: OSError) -> InfraError:
        where = Endpoint(self.endpoint.host, self._bound_port)
        if error.errno == errno.EADDRINUSE:
            return AddressInUseError(
                f"{self.name}: {where} ({transport}) is already in use; is another sandbox"
                " running? (`resilience sandbox down` stops it)"
            )
        return InfraError(f"{self.name}: cannot listen on {where} ({transport}): {error}")

    def _close_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_TCP_CONNECTIONS:
            writer.transport.abort()
            return
        self._connections.add(task)
        try:
            await self._tcp_exchanges(reader, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # idle, half a message, or the client went away: drop the connection
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _tcp_exchanges(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Length-prefixed messages until the client closes or stays silent for too long."""
        while True:
            async with asyncio.timeout(self._tcp_idle):
                try:
                    prefix = await reader.readexactly(2)
                except asyncio.IncompleteReadError as error:
                    if not error.partial:
                        return  # a clean close between messages
                    raise
                wire = await reader.readexactly(int.from_bytes(prefix, "big"))
            peer = writer.get_extra_info("peername")
            client = peer[0] if isinstance(peer, tuple) and isinstance(peer[0], str) else ""
            reply = self.handle(wire, max_size=None, client=client)
            if reply is None:
                return
            writer.write(len(reply).to_bytes(2, "big") + reply)
            async with asyncio.timeout(self._tcp_idle):
                await writer.drain()
