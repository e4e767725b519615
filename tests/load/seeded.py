"""A seeded tiny session-state server for load tests that need no sandbox.

aiohttp on 127.0.0.1, port 0, in a thread; just enough of the API for
`loadtests/sessions_ws.py`: create, replace, and `/ws` with subscribe (replaying from
`since`) and ping. `skip` leaves seq 3 out of every session's log; `duplicate`
pushes seq 3 twice; `healthy` does neither. `restarts` closes every socket with 1001
RESTART_SECONDS after its subscribe (a pod going away, again and again), and
`restarts-from-head` does too but resumes a resubscribing client from the newest event
instead of replaying from its `since`.

With `heartbeat`, a socket is kept as the reference service keeps it
(sandbox/images/session_state/websocket.py): aiohttp's protocol ping after `heartbeat`
seconds without a frame from the client, the socket closed when no pong comes within
half of that, and an application `{"type": "ping"}` every `heartbeat / 2` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

Mode = str  # "healthy" | "skip" | "duplicate" | "restarts" | "restarts-from-head"
RESTART_SECONDS = 0.7  # `restarts*`: how long a socket lives before the server closes it


_closing: set[asyncio.Task[bool]] = set()  # kept until done, as asyncio asks


def _going_away(socket: web.WebSocketResponse) -> None:
    if not socket.closed:
        task = asyncio.ensure_future(socket.close(code=1001, message=b"server shutting down"))
        _closing.add(task)
        task.add_done_callback(_closing.discard)


@dataclass
class Log:
    owner: str
    version: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)


class SeededServer:
    """Sessions in memory; every event goes to every socket subscribed to its session."""

    def __init__(self, mode: Mode, heartbeat: float | None = None) -> None:
        self.mode = mode
        self.heartbeat = heartbeat
        self.sessions: dict[str, Log] = {}
        self.sockets: dict[str, list[web.WebSocketResponse]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/sessions", self.create)
        app.router.add_put("/api/v1/sessions/{id}", self.replace)
        app.router.add_get("/ws", self.websocket)
        return app

    def _append(self, session: str, kind: str, state: dict[str, Any]) -> dict[str, Any]:
        log = self.sessions[session]
        seq = len(log.events) + 1
        if self.mode == "skip" and seq == 3:
            log.events.append({})  # seq 3 is never stored nor sent: a gap
            seq = 4
        event = {
            "type": "event",
            "session": session,
            "seq": seq,
            "version": log.version,
            "kind": kind,
            "state": state,
            "at": "",
        }
        log.events.append(event)
        return event

    def _body(self, session: str, state: dict[str, Any]) -> dict[str, Any]:
        log = self.sessions[session]
        return {"id": session, "owner": log.owner, "version": log.version, "state": state,
                "seq": len(log.events)}  # fmt: skip

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        session = str(uuid.uuid4())
        self.sessions[session] = Log(body["owner"])
        self._append(session, "created", body["state"])
        return web.json_response(self._body(session, body["state"]), status=201)

    async def replace(self, request: web.Request) -> web.Response:
        session = request.match_info["id"]
        body = await request.json()
        log = self.sessions[session]
        log.version += 1
        event = self._append(session, "updated", body["state"])
        copies = 2 if self.mode == "duplicate" and event["seq"] == 3 else 1
        for socket in list(self.sockets.get(session, [])):
            for _ in range(copies):
                await socket.send_str(json.dumps(event))
        return web.json_response(self._body(session, body["state"]))

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=self.heartbeat)
        await socket.prepare(request)
        beat = asyncio.ensure_future(self._beat(socket))
        try:
            await self._serve(socket)
        finally:
            beat.cancel()
        return socket

    async def _beat(self, socket: web.WebSocketResponse) -> None:
        """The service's application heartbeat (`Connection.heartbeat`)."""
        if self.heartbeat is None:
            return
        while not socket.closed:
            await asyncio.sleep(self.heartbeat / 2)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_str(json.dumps({"type": "ping"}))

    async def _serve(self, socket: web.WebSocketResponse) -> None:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame["type"] == "ping":
                await socket.send_str(json.dumps({"type": "pong"}))
            elif frame["type"] == "subscribe":
                session = frame["session"]
                since = frame.get("since", 0)
                await socket.send_str(json.dumps({"type": "subscribed", "session": session}))
                from_head = self.mode == "restarts-from-head" and since > 0
                for event in [] if from_head else self.sessions[session].events:
                    if event and event["seq"] > since:
                        await socket.send_str(json.dumps(event))
                self.sockets.setdefault(session, []).append(socket)
                if self.mode.startswith("restarts"):
                    # a pod going away under its clients, over and over: closed with 1001
                    asyncio.get_running_loop().call_later(RESTART_SECONDS, _going_away, socket)
        for sockets in self.sockets.values():
            if socket in sockets:
                sockets.remove(socket)


@contextmanager
def serving(mode: Mode, heartbeat: float | None = None) -> Iterator[str]:
    """The server in `mode` on 127.0.0.1:<free port>; yields its base URL."""
    with serving_app(SeededServer(mode, heartbeat).app()) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def serving_app(app: web.Application) -> Iterator[int]:
    """An aiohttp app on 127.0.0.1:<free port> in a thread of its own; yields the port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    assert ready.wait(10)
    try:
        yield int(holder["port"])
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
