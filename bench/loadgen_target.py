"""The load generator bench's target: a minimal session-state server on loopback.

Speaks enough of the reference service's protocol (sandbox/images/session_state/rest.py
and websocket.py) for the HarmonyFlow users and their bare baselines: REST create,
read, replace and delete with versions, seqs and If-Match; `/ws` with subscribe
(replaying after `since`), ping/pong, an event per write to every subscriber, the
service's two heartbeats (an application ping every `heartbeat / 2` seconds, aiohttp's
protocol ping after `heartbeat` seconds of client silence, closing the socket when no
pong comes within half of that), and with `--push-interval` a write to every subscribed
session at that interval, so that a client only receives. In memory, one process, kept
apart from the load so that its CPU is not counted as the load's.

    python -m bench.loadgen_target [--heartbeat 30] [--push-interval 0]

Prints `port <n>` once listening on 127.0.0.1; GET /bench/pushed says how many events
it has sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

KEPT_EVENTS = 100  # per session, for replays after `since`
FREEZE_EVERY = 5.0  # seconds: long-lived objects moved out of the cyclic GC's walks


@dataclass
class Session:
    owner: str
    state: Any
    version: int = 1
    seq: int = 0
    log: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_EVENTS))
    subscribers: set[web.WebSocketResponse] = field(default_factory=set)


class Target:
    def __init__(self, heartbeat: float, push_interval: float) -> None:
        self.heartbeat = heartbeat
        self.push_interval = push_interval
        self.sessions: dict[str, Session] = {}
        self.pushed = 0

    def app(self) -> web.Application:
        app = web.Application()
        base = "/api/v1/sessions"
        app.router.add_post(base, self.create)
        app.router.add_get(base + "/{id}", self.read)
        app.router.add_put(base + "/{id}", self.replace)
        app.router.add_delete(base + "/{id}", self.delete)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/bench/pushed", self.count)
        if self.push_interval > 0:
            app.on_startup.append(self._start_pushing)
        return app

    def body(self, session_id: str, session: Session, status: int = 200) -> web.Response:
        text = json.dumps(
            {"id": session_id, "owner": session.owner, "version": session.version,
             "seq": session.seq, "state": session.state}
        )  # fmt: skip
        headers = {"ETag": f'"{session.version}"'}
        return web.Response(text=text, status=status, content_type="application/json",
                            headers=headers)  # fmt: skip

    def write(self, session_id: str, session: Session, kind: str) -> None:
        session.seq += 1
        event = json.dumps(
            {"type": "event", "session": session_id, "seq": session.seq,
             "version": session.version, "kind": kind, "state": session.state, "at": ""}
        )  # fmt: skip
        session.log.append(event)
        for socket in list(session.subscribers):
            if not socket.closed:
                self.pushed += 1
                task = asyncio.ensure_future(socket.send_str(event))
                task.add_done_callback(_quiet)

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        session_id = str(uuid.uuid4())
        session = Session(str(body.get("owner", "")), body.get("state", {}))
        self.sessions[session_id] = session
        self.write(session_id, session, "created")
        return self.body(session_id, session, 201)

    def _found(self, request: web.Request) -> tuple[str, Session | None]:
        session_id = request.match_info["id"]
        return session_id, self.sessions.get(session_id)

    def _mismatch(self, request: web.Request, session: Session) -> bool:
        expected = request.headers.get("If-Match")
        return expected is not None and expected.strip('"') != str(session.version)

    async def read(self, request: web.Request) -> web.Response:
        session_id, session = self._found(request)
        if session is None:
            return web.json_response({"error": "not_found"}, status=404)
        return self.body(session_id, session)

    async def replace(self, request: web.Request) -> web.Response:
        session_id, session = self._found(request)
        body = await request.json()
        if session is None:
            return web.json_response({"error": "not_found"}, status=404)
        if self._mismatch(request, session):
            return web.json_response({"error": "version_mismatch"}, status=412)
        session.version += 1
        session.state = body.get("state", {})
        self.write(session_id, session, "updated")
        return self.body(session_id, session)

    async def delete(self, request: web.Request) -> web.Response:
        session_id, session = self._found(request)
        if session is None:
            return web.json_response({"error": "not_found"}, status=404)
        if self._mismatch(request, session):
            return web.json_response({"error": "version_mismatch"}, status=412)
        del self.sessions[session_id]
        return web.Response(status=204)

    async def count(self, request: web.Request) -> web.Response:
        return web.json_response({"pushed": self.pushed})

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=self.heartbeat)
        await socket.prepare(request)
        beat = asyncio.ensure_future(self._beat(socket))
        followed: list[Session] = []
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._handle(socket, json.loads(message.data), followed)
        finally:
            beat.cancel()
            for session in followed:
                session.subscribers.discard(socket)
        return socket

    async def _handle(
        self, socket: web.WebSocketResponse, frame: dict[str, Any], followed: list[Session]
    ) -> None:
        if frame.get("type") == "ping":
            await socket.send_str('{"type":"pong","at":""}')
            return
        session = self.sessions.get(str(frame.get("session")))
        if frame.get("type") != "subscribe" or session is None:
            await socket.send_str('{"type":"error","code":"invalid","message":"no"}')
            return
        since = int(frame.get("since", 0))
        answer = {"type": "subscribed", "session": frame["session"], "since": since}
        await socket.send_str(json.dumps(answer))
        first = session.seq - len(session.log) + 1
        for seq, event in enumerate(session.log, start=first):
            if seq > since:
                await socket.send_str(event)
        session.subscribers.add(socket)
        followed.append(session)

    async def _beat(self, socket: web.WebSocketResponse) -> None:
        while not socket.closed:
            await asyncio.sleep(self.heartbeat / 2)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_str('{"type":"ping","at":""}')

    async def _start_pushing(self, app: web.Application) -> None:
        task = asyncio.ensure_future(self._push_forever())
        app["pusher"] = task

    async def _push_forever(self) -> None:
        while True:
            await asyncio.sleep(self.push_interval)
            for session_id, session in list(self.sessions.items()):
                if session.subscribers:
                    session.version += 1
                    self.write(session_id, session, "updated")


def _quiet(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # a socket closed under a push: nothing to report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--push-interval", type=float, default=0.0)
    arguments = parser.parse_args()
    target = Target(arguments.heartbeat, arguments.push_interval)

    async def serve() -> None:
        runner = web.AppRunner(target.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        print(f"port {runner.addresses[0][1]}", flush=True)
        while True:  # the load's p99, not this target's GC pauses, is what is measured
            await asyncio.sleep(FREEZE_EVERY)
            gc.freeze()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
