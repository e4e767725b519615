"""The sandbox's cluster DNS: the answer table, the wire edge cases, and a live server."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Coroutine
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from sandbox.cni.faults import DnsFault
from sandbox.infra.clusterdns import (
    RANDOM_ANSWERS,
    SERVED_ZONES,
    ClusterDns,
    Record,
    RecordTable,
    answer,
    dns_fault_for,
    domain_name,
    pattern_matches,
    respond,
    served_zones,
)
from sandbox.infra.supervisor import AddressInUseError, Endpoint, InfraError

DB = "harmonyflow-db.c9akciq32.us-west-2.rds.amazonaws.com"
CACHE = "harmonyflow-cache.abc123.cfg.usw2.cache.amazonaws.com"
TEST_HOST = "127.0.9.53"  # never the sandbox's 127.0.3.53
ZONES = served_zones(SERVED_ZONES)
RECORDS = {
    domain_name(DB): Record(("127.0.3.10",), 5),
    domain_name(CACHE): Record(("127.0.3.20", "127.0.3.21", "127.0.3.22"), 5),
    domain_name("kube-dns.kube-system.svc.cluster.local"): Record(("127.0.3.53",), 30),
}


def query(name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.message.make_query(name, rdtype)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.address for rrset in response.answer for r in rrset)


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode", "expected", "ttl"),
    [
        pytest.param(DB, "A", dns.rcode.NOERROR, ["127.0.3.10"], 5, id="known-a"),
        pytest.param(DB.upper() + ".", "A", dns.rcode.NOERROR, ["127.0.3.10"], 5, id="case-dot"),
        pytest.param(
            CACHE,
            "A",
            dns.rcode.NOERROR,
            ["127.0.3.20", "127.0.3.21", "127.0.3.22"],
            5,
            id="several-addresses",
        ),
        pytest.param(
            "kube-dns.kube-system.svc.cluster.local",
            "A",
            dns.rcode.NOERROR,
            ["127.0.3.53"],
            30,
            id="own-ttl",
        ),
        pytest.param(DB, "AAAA", dns.rcode.NOERROR, [], None, id="aaaa-nodata"),
        pytest.param(DB, "MX", dns.rcode.NOERROR, [], None, id="mx-nodata"),
        pytest.param(
            "other.us-west-2.rds.amazonaws.com",
            "A",
            dns.rcode.NXDOMAIN,
            [],
            None,
            id="unknown-in-zone",
        ),
        pytest.param(
            "nope.default.svc.cluster.local",
            "AAAA",
            dns.rcode.NXDOMAIN,
            [],
            None,
            id="unknown-aaaa-in-zone",
        ),
        pytest.param("example.com", "A", dns.rcode.REFUSED, [], None, id="outside-zones"),
        pytest.param("amazonaws.com.evil.org", "A", dns.rcode.REFUSED, [], None, id="suffix-trap"),
    ],
)
def test_answer_table(
    name: str, rdtype: str, rcode: dns.rcode.Rcode, expected: list[str], ttl: int | None
) -> None:
    request = query(name, rdtype)
    response = answer(request, RECORDS, ZONES)
    assert request.is_response(response)
    assert response.rcode() == rcode
    assert addresses(response) == expected
    assert not response.flags & dns.flags.RA  # never recursive
    assert bool(response.flags & dns.flags.AA) == (rcode != dns.rcode.REFUSED)
    assert response.flags & dns.flags.RD  # copied from the query
    if ttl is not None:
        assert [rrset.ttl for rrset in response.answer] == [ttl]
    assert not response.authority  # no SOA: negative answers are not cached


ALIASES = {
    **RECORDS,
    domain_name("db.hf.svc.cluster.local"): Record((), 5, f"{DB}."),
    domain_name("ext.hf.svc.cluster.local"): Record((), 5, "db.example.org."),
    domain_name("gone.hf.svc.cluster.local"): Record((), 5, "nothing.hf.svc.cluster.local."),
    domain_name("twice.hf.svc.cluster.local"): Record((), 5, "db.hf.svc.cluster.local."),
    domain_name("loop.hf.svc.cluster.local"): Record((), 5, "loop.hf.svc.cluster.local."),
}


def chain(response: dns.message.Message) -> list[str]:
    return [
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rrset[0]}"
        for rrset in response.answer
    ]


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode", "expected"),
    [
        pytest.param(
            "db.hf.svc.cluster.local",
            "A",
            dns.rcode.NOERROR,
            [f"db.hf.svc.cluster.local. CNAME {DB}.", f"{DB}. A 127.0.3.10"],
            id="followed-in-zone",
        ),
        pytest.param(
            "db.hf.svc.cluster.local",
            "CNAME",
            dns.rcode.NOERROR,
            [f"db.hf.svc.cluster.local. CNAME {DB}."],
            id="cname-asked",
        ),
        pytest.param(
            "db.hf.svc.cluster.local",
            "AAAA",
            dns.rcode.NOERROR,
            [f"db.hf.svc.cluster.local. CNAME {DB}."],
            id="aaaa-nodata-at-the-target",
        ),
        pytest.param(
            "ext.hf.svc.cluster.local",
            "A",
            dns.rcode.NOERROR,
            ["ext.hf.svc.cluster.local. CNAME db.example.org."],
            id="outside-zones-not-followed",
        ),
        pytest.param(
            "gone.hf.svc.cluster.local",
            "A",
            dns.rcode.NXDOMAIN,
            ["gone.hf.svc.cluster.local. CNAME nothing.hf.svc.cluster.local."],
            id="target-nxdomain",
        ),
        pytest.param(
            "twice.hf.svc.cluster.local",
            "A",
            dns.rcode.NOERROR,
            [
                "twice.hf.svc.cluster.local. CNAME db.hf.svc.cluster.local.",
                f"db.hf.svc.cluster.local. CNAME {DB}.",
                f"{DB}. A 127.0.3.10",
            ],
            id="chain",
        ),
    ],
)
def test_an_alias_answers_its_cname_and_what_the_zones_know_of_the_target(
    name: str, rdtype: str, rcode: dns.rcode.Rcode, expected: list[str]
) -> None:
    response = answer(query(name, rdtype), ALIASES, ZONES)
    assert response.rcode() == rcode
    assert chain(response) == expected


def test_an_alias_loop_ends() -> None:
    response = answer(query("loop.hf.svc.cluster.local"), ALIASES, ZONES)
    assert response.rcode() == dns.rcode.NOERROR
    assert chain(response) == ["loop.hf.svc.cluster.local. CNAME loop.hf.svc.cluster.local."]


def test_a_table_alias_replaces_the_names_addresses() -> None:
    table = RecordTable()
    table.set("x.hf.svc.cluster.local", ["127.0.4.2"])
    table.set_alias("x.hf.svc.cluster.local", "db.example.org")
    assert table.lookup("x.hf.svc.cluster.local") == Record((), 5, "db.example.org.")


def test_answer_to_several_questions_is_formerr() -> None:
    request = query(DB)
    request.question.append(query(CACHE).question[0])
    response = answer(request, RECORDS, ZONES)
    assert response.rcode() == dns.rcode.FORMERR
    assert request.is_response(response)


def test_answer_to_a_non_query_opcode_is_notimp() -> None:
    request = dns.message.make_query(DB, "A")
    request.set_opcode(dns.opcode.NOTIFY)
    assert answer(request, RECORDS, ZONES).rcode() == dns.rcode.NOTIMP


def test_answer_to_another_class_is_refused() -> None:
    request = dns.message.make_query(DB, "A", rdclass="CH")
    assert answer(request, RECORDS, ZONES).rcode() == dns.rcode.REFUSED


def _garbled(wire: bytes) -> bytes:
    """The header of a query with a question that claims a label longer than the packet."""
    return wire[:12] + b"\x3f" + b"x" * 5


def _with_flags(wire: bytes, flags: int) -> bytes:
    return wire[:2] + struct.pack("!H", flags) + wire[4:]


QUERY_WIRE = query(DB).to_wire()


@pytest.mark.parametrize(
    ("wire", "rcode"),
    [
        pytest.param(QUERY_WIRE, dns.rcode.NOERROR, id="well-formed"),
        pytest.param(_garbled(QUERY_WIRE), dns.rcode.FORMERR, id="bad-question-formerr"),
        pytest.param(QUERY_WIRE + b"junk", dns.rcode.FORMERR, id="trailing-junk-formerr"),
        pytest.param(QUERY_WIRE[:11], None, id="short-header-dropped"),
        pytest.param(b"", None, id="empty-dropped"),
        pytest.param(_with_flags(QUERY_WIRE, 0x8100), None, id="a-response-dropped"),
        pytest.param(
            _with_flags(_garbled(QUERY_WIRE), 0x8100), None, id="malformed-response-dropped"
        ),
    ],
)
def test_respond_on_the_wire(wire: bytes, rcode: dns.rcode.Rcode | None) -> None:
    reply = respond(wire, RECORDS, ZONES, max_size=512)
    if rcode is None:
        assert reply.wire is None
        return
    assert reply.wire is not None
    response = dns.message.from_wire(reply.wire)
    assert response.rcode() == rcode
    assert response.id == struct.unpack("!H", wire[:2])[0]
    assert response.flags & dns.flags.QR


def test_an_answer_too_long_for_udp_is_truncated_and_whole_over_tcp() -> None:
    many = {domain_name(CACHE): Record(tuple(f"127.0.4.{i}" for i in range(1, 200)))}
    wire = query(CACHE).to_wire()
    udp = respond(wire, many, ZONES, max_size=512)
    tcp = respond(wire, many, ZONES, max_size=None)
    assert udp.wire is not None and tcp.wire is not None
    truncated = dns.message.from_wire(udp.wire)
    assert truncated.flags & dns.flags.TC and not truncated.answer
    assert len(addresses(dns.message.from_wire(tcp.wire))) == 199


def test_record_table_names_are_case_insensitive_with_or_without_the_dot() -> None:
    table = RecordTable()
    table.set(DB.upper(), ["127.0.3.10"])
    assert table.lookup(DB + ".") == Record(("127.0.3.10",), 5)
    table.set(DB + ".", ["127.0.3.11", "127.0.3.12"], ttl=60)
    assert table.lookup(DB) == Record(("127.0.3.11", "127.0.3.12"), 60)
    assert table.remove(DB.upper() + ".")
    assert table.lookup(DB) is None
    assert not table.remove(DB)


@pytest.mark.parametrize(
    ("addresses_", "ttl"),
    [
        pytest.param([], 5, id="none"),
        pytest.param(["::1"], 5, id="ipv6"),
        pytest.param(["db.local"], 5, id="a-name"),
        pytest.param(["127.0.3.10"], -1, id="negative-ttl"),
    ],
)
def test_record_table_rejects(addresses_: list[str], ttl: int) -> None:
    with pytest.raises(ValueError):
        RecordTable().set(DB, addresses_, ttl)


# ---- a live server on a test loopback address ----


def _run(body: Coroutine[Any, Any, None]) -> None:
    asyncio.run(body)


def test_live_udp_and_tcp_flip_nxdomain_refused() -> None:
    async def main() -> None:
        server = ClusterDns(Endpoint(TEST_HOST, 0))
        await server.start()
        try:
            await _exchange(server)
        finally:
            await server.stop()
        assert not server.serving

    async def _exchange(server: ClusterDns) -> None:
        host, port = server.endpoint.host, server.endpoint.port
        assert port != 0
        server.set(DB, ["127.0.3.10"])

        def ask(name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
            send = dns.query.tcp if tcp else dns.query.udp
            return send(query(name, rdtype), host, timeout=2, port=port)

        for tcp in (False, True):
            first = await asyncio.to_thread(ask, DB, tcp=tcp)
            assert addresses(first) == ["127.0.3.10"] and first.answer[0].ttl == 5
            assert first.flags & dns.flags.AA and not first.flags & dns.flags.RA
        server.set(DB, ["127.0.3.11"])  # the failover
        for tcp in (False, True):
            flipped = await asyncio.to_thread(ask, DB, tcp=tcp)
            assert addresses(flipped) == ["127.0.3.11"]
        missing = await asyncio.to_thread(ask, "gone.us-west-2.rds.amazonaws.com")
        assert missing.rcode() == dns.rcode.NXDOMAIN
        refused = await asyncio.to_thread(ask, "example.com", tcp=True)
        assert refused.rcode() == dns.rcode.REFUSED
        nodata = await asyncio.to_thread(ask, DB, "AAAA")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert server.queries(DB.upper()) == 5
        assert server.queries("example.com.") == 1

    _run(main())


def test_live_tcp_keeps_a_connection_for_several_queries_and_drops_silent_clients() -> None:
    async def main() -> None:
        server = ClusterDns(Endpoint(TEST_HOST, 0), tcp_idle_seconds=0.5)
        await server.start()
        try:
            server.set(DB, ["127.0.3.10"])
            reader, writer = await asyncio.open_connection(TEST_HOST, server.endpoint.port)
            for _ in range(2):  # RFC 7766: several queries on one connection
                wire = query(DB).to_wire()
                writer.write(len(wire).to_bytes(2, "big") + wire)
                length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 2), "big")
                reply = dns.message.from_wire(await reader.readexactly(length))
                assert addresses(reply) == ["127.0.3.10"]
            assert server.stats().tcp_connections == 1
            # then silence: the server closes it after its idle timeout
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            silent = await asyncio.open_connection(TEST_HOST, server.endpoint.port)
            await asyncio.sleep(0.05)
            assert server.stats().tcp_connections == 1
            await server.stop()  # closes the silent one at once
            assert await asyncio.wait_for(silent[0].read(), 2) == b""
            silent[1].close()
            assert server.stats().tcp_connections == 0
        finally:
            await server.stop()

    _run(main())


def test_live_udp_garbage_gets_formerr_or_nothing() -> None:
    async def main() -> None:
        server = ClusterDns(Endpoint(TEST_HOST, 0))
        await server.start()
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(2)
            with sock:
                sock.sendto(b"\x00\x01", (TEST_HOST, server.endpoint.port))  # dropped
                sock.sendto(_garbled(QUERY_WIRE), (TEST_HOST, server.endpoint.port))
                data = await asyncio.to_thread(sock.recv, 4096)
            response = dns.message.from_wire(data)
            assert response.rcode() == dns.rcode.FORMERR
            assert response.id == struct.unpack("!H", QUERY_WIRE[:2])[0]
            assert server.stats().dropped == 1
        finally:
            await server.stop()

    _run(main())


def test_a_taken_address_fails_start_cleanly() -> None:
    async def main() -> None:
        first = ClusterDns(Endpoint(TEST_HOST, 0))
        await first.start()
        try:
            second = ClusterDns(Endpoint(TEST_HOST, first.endpoint.port))
            with pytest.raises(AddressInUseError, match="already in use"):
                await second.start()
            assert not second.serving
            # TCP alone taken: the UDP socket it had bound is closed again
            blocker = socket.socket()
            blocker.bind((TEST_HOST, 0))
            blocker.listen()
            with blocker:
                third = ClusterDns(Endpoint(TEST_HOST, blocker.getsockname()[1]))
                with pytest.raises(AddressInUseError):
                    await third.start()
                assert not third.serving
        finally:
            await first.stop()

    _run(main())


def test_a_non_loopback_address_is_refused() -> None:
    with pytest.raises(InfraError, match="not a loopback address"):
        ClusterDns(Endpoint("10.1.2.3", 0))


# ---- DNSChaos ----

ERROR_DB = DnsFault("hf/db-error/u1/0", "error", ("127.0.2.5",), ("harmonyflow-db.*",))
RANDOM_ALL = DnsFault("hf/random/u2/0", "random", ("127.0.2.6",))


@pytest.mark.parametrize(
    ("client", "name", "fault"),
    [
        pytest.param("127.0.2.5", DB, ERROR_DB, id="selected-pod-matching-name"),
        pytest.param("127.0.2.5", CACHE, None, id="selected-pod-other-name"),
        pytest.param("127.0.2.7", DB, None, id="unselected-pod"),
        pytest.param("127.0.2.6", CACHE, RANDOM_ALL, id="no-patterns-means-every-name"),
        pytest.param(
            "127.0.2.5", f"{DB}.harmonyflow.svc.cluster.local", ERROR_DB, id="star-spans-dots"
        ),
    ],
)
def test_which_dnschaos_fault_applies(client: str, name: str, fault: DnsFault | None) -> None:
    assert dns_fault_for((ERROR_DB, RANDOM_ALL), client, domain_name(name)) == fault


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        pytest.param("google.com", "google.com.", True, id="exact"),
        pytest.param("google.com", "mail.google.com.", False, id="exact-is-not-suffix"),
        pytest.param("chaos-mesh.*", "chaos-mesh.org.", True, id="star"),
        pytest.param("github.?om", "github.com.", True, id="question-mark"),
        pytest.param("GitHub.com", "github.COM.", True, id="case-insensitive"),
    ],
)
def test_dnschaos_patterns(pattern: str, name: str, matches: bool) -> None:
    assert pattern_matches(pattern, name) is matches


def test_live_dnschaos_answers_the_selected_client_only() -> None:
    """The test talks from 127.0.0.1 (the node); a fault for another client changes nothing."""

    async def main() -> None:
        server = ClusterDns(Endpoint(TEST_HOST, 0))
        await server.start()
        try:
            server.set(DB, ["127.0.3.10"])
            host, port = server.endpoint.host, server.endpoint.port

            def ask(rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
                send = dns.query.tcp if tcp else dns.query.udp
                return send(query(DB, rdtype), host, timeout=2, port=port, source="127.0.0.1")

            server.set_faults([DnsFault("k/other", "error", ("127.0.2.9",))])
            assert addresses(await asyncio.to_thread(ask)) == ["127.0.3.10"]
            server.set_faults([DnsFault("k/error", "error", ("127.0.0.1",), (DB,))])
            for tcp in (False, True):
                failed = await asyncio.to_thread(ask, tcp=tcp)
                assert failed.rcode() == dns.rcode.SERVFAIL and not failed.answer
            server.set_faults([DnsFault("k/random", "random", ("127.0.0.1",))])
            (random_address,) = addresses(await asyncio.to_thread(ask))
            assert ipaddress.IPv4Address(random_address) in RANDOM_ANSWERS
            assert not (await asyncio.to_thread(ask, "AAAA")).answer
            server.set_faults([])
            assert addresses(await asyncio.to_thread(ask)) == ["127.0.3.10"]
        finally:
            await server.stop()

    _run(main())
