"""How a lost WebSocket is judged: the mechanism, not a ratio.

A real aiohttp server on loopback ends each socket one way: a close frame saying it goes
away (1001), a reset without a close frame, a close frame already waiting when the client
writes its next ping (the client's own race with a graceful shutdown), or silence. The
load's socket (`loadtests/harmonyflow/ws.py`) must report the first and third as
graceful, with no failed request, and the others as failures naming what happened.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from harmonyflow.ws import SessionSocket

from tests.load.seeded import serving_app


def _reset(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return  # the client has closed it already (it read the close frame)
    raw = transport.get_extra_info("socket")
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def ending(mode: str) -> web.Application:
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        if mode == "closed-before-ping":
            # the close frame (FIN + close opcode, 2 bytes: 1001) written raw, without
            # waiting for the client's reply, then a reset: the next write fails at once
            assert request.transport is not None
            request.transport.write(b"\x88\x02" + (1001).to_bytes(2, "big"))
            await asyncio.sleep(0.05)
            _reset(request)
            return ws
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            if mode == "going-away":
                await ws.close(code=1001, message=b"server shutting down")
            elif mode == "reset":
                _reset(request)
            elif mode == "internal-error":
                await ws.close(code=1011, message=b"oops")
            # "silent": never answers
        return ws

    app = web.Application()
    app.router.add_get("/ws", websocket)
    return app


def events_of(mode: str) -> list[tuple[str, str, str | None]]:
    """(type, name, error) of what one ping on a socket ending that way reports."""
    fired: list[tuple[str, str, str | None]] = []

    def fire(**event: Any) -> None:
        error = event["exception"]
        fired.append((event["request_type"], event["name"], None if error is None else str(error)))

    with serving_app(ending(mode)) as port:
        sock = SessionSocket(f"ws://127.0.0.1:{port}/ws", fire, timeout=1.0)
        assert sock.ensure_connected()
        if mode == "closed-before-ping":
            time.sleep(0.3)  # the close frame and the reset arrive before the ping
        sock.ping()
        sock._drop()
    return [e for e in fired if e[:2] != ("WSCONN", "connect")]


@pytest.mark.parametrize("mode", ["going-away", "closed-before-ping"])
def test_a_graceful_close_is_no_failure(mode: str) -> None:
    assert events_of(mode) == [("WS", "disconnect", None)]


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("reset", "no close frame (1006)"),
        ("internal-error", "closed by the server (1011)"),
        ("silent", "no ping answer within 1.0s"),
    ],
)
def test_an_abrupt_loss_fails_the_request_and_names_how(mode: str, named: str) -> None:
    events = events_of(mode)
    assert [e[:2] for e in events] == [("WS", "disconnect"), ("WS", "ping")], events
    assert all(error is not None and named in error for _, _, error in events), events
