"""The `channel.k8s.io` WebSocket framing kubectl and the Python client speak for exec.

Each binary message starts with one byte naming the channel: 0 stdin, 1 stdout,
2 stderr, 3 error (the final `Status` as JSON), 4 resize (JSON `{"Width","Height"}`).
`v5.channel.k8s.io` adds one control message, `[255, channel]`: the client will send
no more on that channel (stdin's EOF, which v4 cannot say). Port-forward over
`v4.channel.k8s.io` uses the same framing with two channels per port (data, error).
Upstream: k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go and
k8s.io/apimachinery/pkg/util/remotecommand/constants.go.

    >>> decode(bytes([1]) + b"hi", V5)
    Data(channel=1, data=b'hi')
    >>> decode(bytes([255, 0]), V5)
    CloseChannel(channel=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: the next byte is the channel the peer closed


@dataclass(frozen=True)
class Data:
    channel: int
    data: bytes


@dataclass(frozen=True)
class CloseChannel:
    channel: int


@dataclass(frozen=True)
class Ignored:
    """An empty message, or a close signal without its channel byte: nothing to do."""

    why: str


Frame = Data | CloseChannel | Ignored


def message_bytes(kind: str, data: bytes | str) -> bytes | None:
    """A client message's bytes; text messages count too (None: a control message).

    The Python client sends stdin given as `str` in a *text* message, channel byte
    included (`chr(0) + data`); upstream reads any message's bytes alike.
    """
    if kind == "binary" and isinstance(data, bytes):
        return data
    if kind == "text" and isinstance(data, str):
        return data.encode()
    return None


def encode(channel: int, data: bytes) -> bytes:
    """One binary message on `channel` (0..254)."""
    if not 0 <= channel < CLOSE:
        raise ValueError(f"channel {channel} is out of range")
    return bytes([channel]) + data


def decode(message: bytes, protocol: str) -> Frame:
    """What one binary message from the client means under `protocol`."""
    if not message:
        return Ignored("empty message")
    if message[0] == CLOSE and protocol == V5:
        if len(message) != 2:
            return Ignored(f"close signal with {len(message) - 1} bytes instead of 1")
        return CloseChannel(message[1])
    return Data(message[0], message[1:])


def choose_protocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first protocol the client offered that the server speaks (the client's order),
    or None: upstream then refuses the handshake."""
    for protocol in offered:
        if protocol in supported:
            return protocol
    return None


def offered_protocols(header: str | None) -> list[str]:
    """`Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io` -> the list."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def exit_status(code: int) -> dict[str, Any]:
    """The Status the error channel carries when the command ends with `code`.

    kubectl turns NonZeroExitCode into its own exit code (client-go
    remotecommand errorDecoderV4), so `kubectl exec -- sh -c 'exit 3'` exits 3.

    >>> exit_status(0)
    {'metadata': {}, 'status': 'Success'}
    """
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def error_status(message: str) -> dict[str, Any]:
    """A failure that is not the command's exit code (it could not start, it timed out)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
        "details": {"causes": [{"message": message}]},
    }


def port_prefix(port: int) -> bytes:
    """The first message on each port-forward channel: the port, 2 bytes little-endian
    (pkg/kubelet/cri/streaming/portforward/websocket.go)."""
    return port.to_bytes(2, "little")
