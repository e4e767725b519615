"""NFQUEUE wire format, byte for byte (include/uapi/linux/netfilter/nfnetlink_queue.h)."""

from __future__ import annotations

import socket
import struct
import sys

import pytest

from sandbox.cni.nfqueue import (
    Ack,
    Packet,
    bind_request,
    configure_request,
    decode,
    encode_attribute,
    unbind_request,
    verdict_message,
)

pytestmark = pytest.mark.skipif(sys.byteorder != "little", reason="layouts written for x86/arm64")


def nlmsghdr(length: int, kind: int, flags: int, sequence: int) -> bytes:
    return struct.pack("<IHHII", length, kind, flags, sequence, 0)


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        pytest.param(1, b"\x01\x00\x00\x02", b"\x08\x00\x01\x00\x01\x00\x00\x02", id="aligned"),
        pytest.param(
            2,
            b"\x00\x00\x00\x40\x02",
            b"\x09\x00\x02\x00\x00\x00\x00\x40\x02\x00\x00\x00",
            id="padded-length-unpadded",
        ),
        pytest.param(5, b"", b"\x04\x00\x05\x00", id="empty"),
    ],
)
def test_encode_attribute(kind: int, payload: bytes, expected: bytes) -> None:
    assert encode_attribute(kind, payload) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            bind_request(7, sequence=1),
            nlmsghdr(28, 0x0302, 0x5, 1)
            + b"\x00\x00\x00\x07"  # nfgenmsg: AF_UNSPEC, v0, queue 7 big-endian
            + b"\x08\x00\x01\x00"
            + b"\x01\x00\x00\x02",  # NFQA_CFG_CMD: BIND, pad, AF_INET
            id="bind-queue-7-for-ipv4",
        ),
        pytest.param(
            unbind_request(300, sequence=9),
            nlmsghdr(28, 0x0302, 0x5, 9)
            + b"\x00\x00\x01\x2c"
            + b"\x08\x00\x01\x00"
            + b"\x02\x00\x00\x00",
            id="unbind-queue-300",
        ),
        pytest.param(
            configure_request(7, sequence=2, copy_range=64, queue_maxlen=4096),
            nlmsghdr(56, 0x0302, 0x5, 2)
            + b"\x00\x00\x00\x07"
            + b"\x09\x00\x02\x00"
            + b"\x00\x00\x00\x40\x02\x00\x00\x00"  # PARAMS: 64, COPY_PACKET
            + b"\x08\x00\x03\x00"
            + b"\x00\x00\x10\x00"  # QUEUE_MAXLEN 4096
            + b"\x08\x00\x04\x00"
            + b"\x00\x00\x00\x01"  # MASK: FAIL_OPEN
            + b"\x08\x00\x05\x00"
            + b"\x00\x00\x00\x01",  # FLAGS: FAIL_OPEN
            id="copy-64-bytes-maxlen-fail-open",
        ),
        pytest.param(
            verdict_message(7, packet_id=0x01020304, accept=True),
            nlmsghdr(32, 0x0301, 0x1, 0)
            + b"\x00\x00\x00\x07"
            + b"\x0c\x00\x02\x00"
            + b"\x00\x00\x00\x01"
            + b"\x01\x02\x03\x04",
            id="accept",
        ),
        pytest.param(
            verdict_message(7, packet_id=5, accept=False),
            nlmsghdr(32, 0x0301, 0x1, 0)
            + b"\x00\x00\x00\x07"
            + b"\x0c\x00\x02\x00"
            + b"\x00\x00\x00\x00"
            + b"\x00\x00\x00\x05",
            id="drop",
        ),
    ],
)
def test_requests(message: bytes, expected: bytes) -> None:
    assert message == expected


def packet_message(packet_id: int, payload: bytes, cap_len: int | None = None) -> bytes:
    attributes = encode_attribute(1, struct.pack("!IHB", packet_id, 0x0800, 3))
    attributes += encode_attribute(10 | 0x4000, payload)  # NLA_F_NET_BYTEORDER must not matter
    if cap_len is not None:
        attributes += encode_attribute(13, struct.pack("!I", cap_len))
    body = struct.pack("!BBH", socket.AF_INET, 0, 7) + attributes
    return nlmsghdr(16 + len(body), 0x0300, 0, 0) + body


def ipv4_header(total_length: int) -> bytes:
    return bytes([0x45, 0]) + struct.pack("!H", total_length) + bytes(16)


def ack(sequence: int, error: int) -> bytes:
    return (
        nlmsghdr(36, 2, 0, sequence) + struct.pack("<i", error) + nlmsghdr(28, 0x0302, 5, sequence)
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            packet_message(42, ipv4_header(60) + bytes(40)),
            [Packet(42, 60)],
            id="whole-packet-copied",
        ),
        pytest.param(
            packet_message(43, ipv4_header(1500)[:20] + bytes(44), cap_len=1500),
            [Packet(43, 1500)],
            id="cap-len-says-the-length",
        ),
        pytest.param(
            packet_message(44, ipv4_header(9000)),
            [Packet(44, 9000)],
            id="ipv4-total-length-when-no-cap-len",
        ),
        pytest.param(
            packet_message(1, ipv4_header(20)) + packet_message(2, ipv4_header(20)),
            [Packet(1, 20), Packet(2, 20)],
            id="a-batch",
        ),
        pytest.param(ack(3, 0), [Ack(3, 0)], id="ack"),
        pytest.param(ack(4, -16), [Ack(4, -16)], id="error-ebusy"),
        pytest.param(packet_message(5, ipv4_header(20))[:-4], [], id="truncated-is-ignored"),
    ],
)
def test_decode(data: bytes, expected: list[Packet | Ack]) -> None:
    assert list(decode(data)) == expected
