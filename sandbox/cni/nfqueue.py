"""A small NFQUEUE client: raw netlink, no library.

The pod network sends the packets of a netem fault to an NFQUEUE (iptables-nft's
`NFQUEUE --queue-num N --queue-bypass`); the netem worker binds that queue, reads
each packet's id and length, and answers NF_ACCEPT or NF_DROP when the model says.
The PyPI binding (NetfilterQueue) ships as source only and needs libnetfilter-queue-dev
and a compiler, which a user's `make setup` should not; the wire format is small
enough to speak directly. Layouts are the kernel's (include/uapi/linux/netlink.h,
netfilter/nfnetlink.h, netfilter/nfnetlink_queue.h): a `nlmsghdr` (host byte order),
a `nfgenmsg` (family, version, queue number big-endian), then netlink attributes
(length and type in host order, payload padded to 4 bytes; the queue's own structs
are big-endian).

Encoding and decoding are pure functions, tested byte for byte; `NfQueue` is the
socket around them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFNETLINK_V0 = 0

# nlmsghdr flags and types (netlink.h)
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_NOOP = 0x1
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

# enum nfqnl_msg_types
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2

# enum nfqnl_attr_type
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQA_CAP_LEN = 13

# enum nfqnl_attr_config, nfqnl_msg_config_cmds, nfqnl_config_mode, config flags
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 1 << 0

NF_DROP = 0
NF_ACCEPT = 1

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")
HEADER_SIZE = _NLMSGHDR.size + _NFGENMSG.size  # 20

# enough of the packet to read an IPv4 header's total length; the kernel also says
# the whole length in NFQA_CAP_LEN whenever it copies less than the packet
DEFAULT_COPY_RANGE = 64
DEFAULT_QUEUE_MAXLEN = 16384  # the kernel's default is 1024; fail-open lets the excess pass
DEFAULT_RECEIVE_BUFFER = 8 << 20


class NfQueueError(OSError):
    """The kernel refused a queue request; the message says which and why."""


def queue_message_type(message: int) -> int:
    """nfnetlink splits the type: subsystem in the high byte, message in the low one."""
    return (NFNL_SUBSYS_QUEUE << 8) | message


def _pad(length: int) -> int:
    return (length + 3) & ~3


def encode_attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute: its length (header + payload, unpadded), type, padded payload."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (_pad(length) - length)


def encode_message(
    message: int,
    queue: int,
    attributes: Sequence[tuple[int, bytes]],
    *,
    flags: int = NLM_F_REQUEST,
    sequence: int = 0,
    family: int = socket.AF_UNSPEC,
) -> bytes:
    """A whole nfnetlink queue message."""
    body = _NFGENMSG.pack(family, NFNETLINK_V0, queue) + b"".join(
        encode_attribute(kind, payload) for kind, payload in attributes
    )
    return (
        _NLMSGHDR.pack(_NLMSGHDR.size + len(body), queue_message_type(message), flags, sequence, 0)
        + body
    )


def bind_request(queue: int, sequence: int, family: int = socket.AF_INET) -> bytes:
    """NFQNL_CFG_CMD_BIND of `queue` for `family`'s packets, acknowledged."""
    command = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, family)
    return encode_message(
        NFQNL_MSG_CONFIG,
        queue,
        [(NFQA_CFG_CMD, command)],
        flags=NLM_F_REQUEST | NLM_F_ACK,
        sequence=sequence,
    )


def unbind_request(queue: int, sequence: int) -> bytes:
    command = struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0)
    return encode_message(
        NFQNL_MSG_CONFIG,
        queue,
        [(NFQA_CFG_CMD, command)],
        flags=NLM_F_REQUEST | NLM_F_ACK,
        sequence=sequence,
    )


def configure_request(
    queue: int,
    sequence: int,
    *,
    copy_range: int = DEFAULT_COPY_RANGE,
    queue_maxlen: int = DEFAULT_QUEUE_MAXLEN,
    fail_open: bool = True,
) -> bytes:
    """Copy `copy_range` bytes of each packet, hold at most `queue_maxlen`, and (fail-open)
    let packets through rather than drop them when the queue is full or we cannot be told."""
    flags = NFQA_CFG_F_FAIL_OPEN if fail_open else 0
    return encode_message(
        NFQNL_MSG_CONFIG,
        queue,
        [
            (NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, NFQNL_COPY_PACKET)),
            (NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", queue_maxlen)),
            (NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
            (NFQA_CFG_FLAGS, struct.pack("!I", flags)),
        ],
        flags=NLM_F_REQUEST | NLM_F_ACK,
        sequence=sequence,
    )


def verdict_message(queue: int, packet_id: int, accept: bool) -> bytes:
    """NFQNL_MSG_VERDICT for one packet (no ack asked: errors still come back)."""
    header = struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id)
    return encode_message(NFQNL_MSG_VERDICT, queue, [(NFQA_VERDICT_HDR, header)])


@dataclass(frozen=True)
class Packet:
    """A queued packet: the id to answer, and its length in bytes (the IP packet)."""

    packet_id: int
    length: int


@dataclass(frozen=True)
class Ack:
    """An NLMSG_ERROR: `error` 0 acknowledges request `sequence`, else it is -errno."""

    sequence: int
    error: int


def _attributes(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    offset = start
    while offset + _NLATTR.size <= end:
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            return
        yield kind & NLA_TYPE_MASK, data[offset + _NLATTR.size : offset + length]
        offset += _pad(length)


def packet_length(attributes: dict[int, bytes]) -> int:
    """NFQA_CAP_LEN when the kernel copied less than the packet, else the payload's
    length; the IPv4 total length as a last resort."""
    if NFQA_CAP_LEN in attributes:
        (length,) = struct.unpack("!I", attributes[NFQA_CAP_LEN][:4])
        return int(length)
    payload = attributes.get(NFQA_PAYLOAD, b"")
    if len(payload) >= 4 and payload[0] >> 4 == 4:
        (total,) = struct.unpack_from("!H", payload, 2)
        return max(int(total), len(payload))
    return len(payload)


def decode(data: bytes) -> Iterator[Packet | Ack]:
    """The packets and acks in one datagram from the queue socket (a batch of messages)."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, sequence, _port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        end = offset + length
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
            yield Ack(sequence, error)
        elif kind == queue_message_type(NFQNL_MSG_PACKET):
            attributes = dict(_attributes(data, offset + HEADER_SIZE, end))
            header = attributes.get(NFQA_PACKET_HDR)
            if header is not None and len(header) >= 4:
                (packet_id,) = struct.unpack_from("!I", header)
                yield Packet(int(packet_id), packet_length(attributes))
        offset += _pad(length)


class NfQueue:
    """One bound queue on a netlink socket of its own. Use as a context manager.

    `NfQueue(7)` binds queue 7 for IPv4 (raising NfQueueError when another process
    holds it), copies 64 bytes of each packet and turns fail-open on; `receive()`
    returns what arrived without blocking; `verdicts()` answers many packets in one
    send; `close()` unbinds (the kernel drops what was still queued).
    """

    def __init__(
        self,
        queue: int,
        *,
        copy_range: int = DEFAULT_COPY_RANGE,
        queue_maxlen: int = DEFAULT_QUEUE_MAXLEN,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        timeout: float = 2.0,
    ) -> None:
        self.queue = queue
        self._sequence = 0
        self.ack_errors: list[Ack] = []
        self._early: list[Packet] = []  # queued while we waited for an ack
        self.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.socket.settimeout(timeout)
            _grow_receive_buffer(self.socket, receive_buffer)
            self.socket.bind((0, 0))
            self._request(bind_request(queue, self._next()), f"binding NFQUEUE {queue}")
            self._request(
                configure_request(
                    queue, self._next(), copy_range=copy_range, queue_maxlen=queue_maxlen
                ),
                f"configuring NFQUEUE {queue}",
            )
            self.socket.setblocking(False)
        except BaseException:
            self.socket.close()
            raise

    def fileno(self) -> int:
        return self.socket.fileno()

    def receive(self, max_datagrams: int = 256) -> list[Packet]:
        """The packets waiting now (at most `max_datagrams` reads); errors the kernel
        reported about our verdicts are kept in `ack_errors`."""
        packets, self._early = self._early, []
        for _ in range(max_datagrams):
            try:
                data = self.socket.recv(1 << 17)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.ENOBUFS:  # fail-open let those packets through
                    continue
                raise
            for item in decode(data):
                if isinstance(item, Packet):
                    packets.append(item)
                elif item.error != 0:
                    self.ack_errors.append(item)
        return packets

    def verdicts(self, answers: Sequence[tuple[int, bool]]) -> None:
        """Answer (packet id, accept) pairs, in order, batched into few sends."""
        chunk = 512
        for start in range(0, len(answers), chunk):
            data = b"".join(
                verdict_message(self.queue, packet_id, accept)
                for packet_id, accept in answers[start : start + chunk]
            )
            self._send_all(data)

    def close(self) -> None:
        """Unbind the queue (best effort) and close the socket."""
        if self.socket.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            self.socket.setblocking(True)
            self.socket.settimeout(1.0)
            self._request(unbind_request(self.queue, self._next()), "unbinding")
        self.socket.close()

    def __enter__(self) -> NfQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def _send_all(self, data: bytes) -> None:
        while True:
            try:
                self.socket.send(data)
                return
            except BlockingIOError:
                select.select([], [self.socket], [], 1.0)

    def _request(self, message: bytes, what: str) -> None:
        """Send a request that asks for an ack and wait (bounded by the socket timeout)."""
        (sequence,) = struct.unpack_from("=I", message, 8)
        self.socket.send(message)
        deadline = time.monotonic() + (self.socket.gettimeout() or 2.0)
        while True:
            if time.monotonic() > deadline:
                raise NfQueueError(errno.ETIMEDOUT, f"{what}: the kernel did not answer")
            try:
                data = self.socket.recv(1 << 16)
            except TimeoutError:
                raise NfQueueError(errno.ETIMEDOUT, f"{what}: the kernel did not answer") from None
            answered = False
            for item in decode(data):
                if isinstance(item, Packet):
                    self._early.append(item)
                elif item.sequence == sequence:
                    if item.error != 0:
                        raise NfQueueError(-item.error, _explain(what, self.queue, -item.error))
                    answered = True
            if answered:
                return


def _explain(what: str, queue: int, code: int) -> str:
    reason = os.strerror(code)
    if code == errno.EPERM:  # nfqnl_recv_config checks the owner before the command
        reason += f" (queue {queue} is bound by another process, or we lack CAP_NET_ADMIN)"
    elif code == errno.EBUSY:
        reason += f" (queue {queue} is already bound)"
    return f"{what}: {reason}"


def _grow_receive_buffer(sock: socket.socket, size: int) -> None:
    """SO_RCVBUFFORCE (root may exceed rmem_max), else as much as SO_RCVBUF allows:
    a full buffer costs packets (which fail-open then lets through unshaped)."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
