"""What a testapp pod sees of the network (its `/probe` route), for the pod network's live tests."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

CONNECTED = "connected"
DROPPED = "TimeoutError"  # what a connection whose first packet is dropped ends in


def probe(ip: str, **query: Any) -> dict[str, Any]:
    """The answer of `/probe` on the pod at `ip` (the request itself comes from the node)."""
    text = "&".join(f"{k}={v}" for k, v in query.items())
    with urllib.request.urlopen(f"http://{ip}:8080/probe?{text}", timeout=30) as answer:
        return dict(json.loads(answer.read()))


def connect_outcome(source: str | None, host: str, port: int, timeout: float = 1.0) -> str:
    """`CONNECTED`, or the name of the error a TCP connect from the pod at `source` to
    `host:port` ended in (`DROPPED`, `ConnectionRefusedError`); `source` None: from the node,
    this process."""
    if source is None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return CONNECTED
        except OSError as error:
            return type(error).__name__
    answer = probe(source, proto="connect", host=host, port=port, timeout=timeout)
    return CONNECTED if answer.get("connected") else str(answer.get("error"))
