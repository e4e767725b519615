"""`/ws`: subscribe to sessions, get their events in seq order, heartbeats both ways.

Client frames (JSON text):
    {"type": "subscribe", "session": "<id>", "since": <seq, default 0>}
    {"type": "unsubscribe", "session": "<id>"}
    {"type": "ping"}
Server frames: `subscribed`, `unsubscribed`, `event` (see `model.Event.to_message`),
`ping` every WS_HEARTBEAT_SECONDS, `pong`, and `error` for a frame it cannot use
(the connection stays open; more than FLOOD_LIMIT of them in FLOOD_WINDOW seconds
closes it with 1008). At shutdown every socket is closed with 1001. With
WS_MAX_AGE_SECONDS set (release 1.2.0), each socket is closed with 1012 (service
restart) at about that age, so its client reconnects through the ingress and sockets
spread over the pods there are now (`faults.socket_max_age`).

    >>> parse_client_message(
    ...     '{"type": "subscribe", "session": "6f1c0b5e-0d2c-4d7e-9f43-bd1e4f5a8c11"}'
    ... )
    Subscribe(session='6f1c0b5e-0d2c-4d7e-9f43-bd1e4f5a8c11', since=0)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from sandbox.images.session_state.errors import ServiceError, Unavailable
from sandbox.images.session_state.faults import resumes_from_head, socket_max_age
from sandbox.images.session_state.hub import Subscription
from sandbox.images.session_state.model import Event, parse_session_id
from sandbox.images.session_state.state import RUNTIME, Runtime

log = logging.getLogger("session_state.websocket")
MAX_FRAME_BYTES = 64 * 1024
MAX_SUBSCRIPTIONS = 100
FLOOD_LIMIT = 20
FLOOD_WINDOW = 10.0
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
SERVICE_RESTART = 1012  # IANA: clients reconnect; what a socket at its max age is closed with


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Subscribe:
    session: str
    since: int


@dataclass(frozen=True)
class Unsubscribe:
    session: str


@dataclass(frozen=True)
class Ping:
    pass


ClientMessage = Subscribe | Unsubscribe | Ping


def parse_client_message(text: str) -> ClientMessage:
    """One client frame; `ProtocolError` says what is wrong with it."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "the frame must be a JSON object")
    kind = data.get("type")
    if kind == "ping":
        return Ping()
    if kind not in ("subscribe", "unsubscribe"):
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:32]!r}")
    try:
        session = parse_session_id(str(data.get("session", "")))
    except ServiceError as error:
        raise ProtocolError("invalid_id", error.message) from None
    if kind == "unsubscribe":
        return Unsubscribe(session)
    since = data.get("since", 0)
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise ProtocolError("invalid_since", "since must be an integer >= 0")
    return Subscribe(session, since)


def flood_exceeded(errors: deque[float], now: float, window: float, limit: int) -> bool:
    """Record an error at `now`; True when more than `limit` fell within `window`."""
    errors.append(now)
    while errors and errors[0] <= now - window:
        errors.popleft()
    return len(errors) > limit


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Connection:
    """One socket: its subscriptions (each with a pump task) and a send lock."""

    def __init__(self, ws: web.WebSocketResponse, runtime: Runtime) -> None:
        self.ws = ws
        self.runtime = runtime
        self.lock = asyncio.Lock()
        self.subscriptions: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}
        self.errors: deque[float] = deque()

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_str(json.dumps(message, separators=(",", ":")))

    async def send_event(self, event: Event) -> None:
        await self.send(event.to_message())

    async def error(self, code: str, message: str) -> bool:
        """Answer a bad frame; False when the client is flooding and was closed."""
        loop = asyncio.get_running_loop()
        if flood_exceeded(self.errors, loop.time(), FLOOD_WINDOW, FLOOD_LIMIT):
            await self.ws.close(code=POLICY_VIOLATION, message=b"too many malformed frames")
            return False
        await self.send({"type": "error", "code": code, "message": message})
        return True

    async def handle_text(self, text: str) -> bool:
        try:
            message = parse_client_message(text)
        except ProtocolError as problem:
            return await self.error(problem.code, problem.message)
        if isinstance(message, Ping):
            await self.send({"type": "pong", "at": now_iso()})
        elif isinstance(message, Subscribe):
            known = message.session in self.subscriptions
            if not known and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                return await self.error("too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS}")
            self.unsubscribe(message.session)
            # `server` says which pod answers, so a client (or a test) can tell whom it lost.
            answer = {
                "type": "subscribed",
                "session": message.session,
                "since": message.since,
                "server": self.runtime.settings.bind_host,
            }
            await self.send(answer)
            self.subscribe(message)
        else:
            self.unsubscribe(message.session)
            await self.send({"type": "unsubscribed", "session": message.session})
        return True

    def subscribe(self, message: Subscribe) -> None:
        runtime = self.runtime
        subscription = Subscription(
            message.session,
            message.since,
            self.send_event,
            runtime.hub.source,  # the gated event log (hub.ReplayGate)
            runtime.metrics,
            retry_delay=runtime.settings.timings.poll_interval,
            from_head=resumes_from_head(runtime.settings.fault, message.since),
        )
        runtime.hub.add(subscription)  # before the replay: no live event can slip between
        task = asyncio.create_task(self._pump(subscription))
        self.subscriptions[message.session] = (subscription, task)

    async def _pump(self, subscription: Subscription) -> None:
        try:
            await subscription.run()
        except (ConnectionError, RuntimeError) as error:
            log.debug("subscriber of %s gone: %s", subscription.session_id, error)
        except Exception:  # the pump's outermost loop: log, and let the client reconnect
            log.exception("delivery to a subscriber of %s failed", subscription.session_id)
            await self.ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"delivery failed")

    def unsubscribe(self, session_id: str) -> None:
        found = self.subscriptions.pop(session_id, None)
        if found is not None:
            subscription, task = found
            self.runtime.hub.remove(subscription)
            task.cancel()

    async def heartbeat(self, interval: float) -> None:
        while not self.ws.closed:
            await asyncio.sleep(interval)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send({"type": "ping", "at": now_iso()})

    async def close_all(self) -> None:
        for session_id in list(self.subscriptions):
            self.unsubscribe(session_id)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    runtime = request.app[RUNTIME]
    # Refused only once the sockets are being closed: during the drain delay the ingress
    # may still send a reconnecting client here (it drops the pod up to one sync later),
    # and a 503 then is a failed reconnect the client's user sees.
    if runtime.closing.is_set():
        raise Unavailable("shutting down")
    heartbeat = runtime.settings.timings.ws_heartbeat
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=max(30.0, 2 * heartbeat))
    await ws.prepare(request)
    connection = Connection(ws, runtime)
    runtime.sockets.add(ws)
    runtime.metrics.websockets.set(len(runtime.sockets))
    beat = asyncio.create_task(connection.heartbeat(heartbeat))
    max_age = socket_max_age(
        runtime.settings.fault, runtime.settings.timings.ws_max_age, runtime.draw
    )
    aging = asyncio.create_task(age_out(ws, max_age, runtime)) if max_age else None
    try:
        await _serve(connection)
    finally:
        beat.cancel()
        if aging is not None:
            aging.cancel()
        await connection.close_all()
        runtime.sockets.discard(ws)
        runtime.metrics.websockets.set(len(runtime.sockets))
    return ws


async def _serve(connection: Connection) -> None:
    ws = connection.ws
    async for message in ws:
        try:
            if message.type == WSMsgType.TEXT:
                keep = await connection.handle_text(message.data)
            elif message.type == WSMsgType.BINARY:
                keep = await connection.error("binary_frame", "only JSON text frames are accepted")
            else:
                keep = message.type not in (WSMsgType.ERROR, WSMsgType.CLOSE)
        except (ConnectionError, RuntimeError) as error:
            log.debug("websocket send failed: %s", error)
            break
        if not keep:
            break
    if not ws.closed:
        code = WSCloseCode.MESSAGE_TOO_BIG if ws.exception() else WSCloseCode.OK
        await ws.close(code=code)


async def age_out(ws: web.WebSocketResponse, seconds: float, runtime: Runtime) -> None:
    """Close the socket with 1012 once it is `seconds` old: its client reconnects, and the
    ingress may send it to a pod that joined since (a gRPC MaxConnectionAge for sockets)."""
    await asyncio.sleep(seconds)
    if ws.closed or runtime.closing.is_set():
        return
    runtime.metrics.aged_out.inc()
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=SERVICE_RESTART, message=b"max connection age")


async def close_all_sockets(runtime: Runtime, timeout: float) -> None:
    """Shutdown: close every socket with 1001 (going away), at most `timeout` seconds."""
    sockets = list(runtime.sockets)
    if not sockets:
        return
    closing = [ws.close(code=GOING_AWAY, message=b"server shutting down") for ws in sockets]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", websocket_handler, allow_head=False)
