"""The WebSocket client layer: websocket-client (gevent-friendly) firing Locust events.

Entries it reports (request type, name):

- `WSCONN connect`      handshake time; a failure when the socket cannot be opened
- `WS subscribe`        subscribe -> `subscribed` round trip
- `WS ping`             ping -> pong round trip (the message RTT)
- `WS fanout`           an update made over REST until its event is pushed here
                        (end to end: REST write, commit, pub/sub, delivery)
- `WS disconnect`       each time the socket is lost: a success when the server closed
                        it with a close frame saying it goes away (1001 or 1012), a
                        failure when it did not (a reset, an end of stream without a
                        close frame (1006), a timeout, another close code); the failure
                        names which
- `WSRECONN reconnect`  time from losing the socket to being subscribed again; the
                        entry's total response time is the time spent disconnected
- `WS seq gap`          a failure per gap in a session's pushed seqs (`len` = events missing)
- `WS seq duplicate`    a failure per seq delivered twice

Everything runs in the user's own greenlet, one request at a time: replies are
correlated by order (one ping in flight) and events by (session, version). Every
wait has a deadline.

A pod that shuts down well closes its sockets with 1001 while the client may be
sending: a ping written after the close frame arrived fails with a broken pipe. That is
the client's own race, not the service's failure, so a request cut short by a graceful
close is not reported; the close is (`WS disconnect`, a success), and the reconnect
measures what the user felt. Frames are read here, not by websocket-client's
`recv_data`, whose automatic close reply raises on a reset socket and hides the code.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import websocket

from .sequence import SequenceTracker

WS = "WS"
WSCONN = "WSCONN"
WSRECONN = "WSRECONN"
Fire = Callable[..., None]


# RFC 6455 §7.4.1 1001 "going away" (a server going down) and IANA's 1012 "service
# restart": what a pod that is told to terminate must send its clients.
GRACEFUL_CLOSE_CODES = frozenset({1001, 1012})
# RFC 6455 §7.1.5: the connection closed without a close frame.
NO_CLOSE_FRAME = 1006
# After a failed send, how long to look for a close frame the server had already sent.
CLOSE_FRAME_GRACE_SECONDS = 0.5


class Disconnected(Exception):
    """The socket is gone: closed by the server with `code`, reset, or timed out."""

    def __init__(self, how: str, code: int = NO_CLOSE_FRAME) -> None:
        super().__init__(how)
        self.code = code

    @property
    def graceful(self) -> bool:
        """The server said it is going away: the shutdown the service promises.

        >>> Disconnected("closed by the server (1001)", 1001).graceful
        True
        >>> Disconnected("ConnectionResetError, no close frame (1006)").graceful
        False
        """
        return self.code in GRACEFUL_CLOSE_CODES


def closed_with(data: bytes) -> Disconnected:
    """The loss a close frame's payload describes (no status code reads as 1005).

    >>> closed_with(b"\\x03\\xe9bye").code, closed_with(b"").code
    (1001, 1005)
    """
    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
    return Disconnected(f"closed by the server ({code})", code)


def lost_without_close(error: BaseException) -> Disconnected:
    return Disconnected(f"{type(error).__name__}, no close frame ({NO_CLOSE_FRAME})")


class SequenceGap(Exception):
    """Events were skipped: the service promises every seq once, in order."""


class SequenceDuplicate(Exception):
    """An event was delivered twice."""


class NoPush(Exception):
    """The update was acknowledged over REST but its event never arrived."""


def ws_url(host: str, path: str = "/ws") -> str:
    """`http://h:p` -> `ws://h:p/ws` (`https` -> `wss`)."""
    base = host.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + path
    return "ws://" + base.removeprefix("http://") + path


class SessionSocket:
    """One WebSocket with its subscriptions; reconnects and resubscribes with `since`."""

    def __init__(self, url: str, fire: Fire, timeout: float = 5.0) -> None:
        self.url = url
        self.fire = fire
        self.timeout = timeout
        self.tracker = SequenceTracker()
        self.sessions: list[str] = []
        self._socket: websocket.WebSocket | None = None
        self._lost_at: float | None = None  # perf_counter when the socket was lost
        self._versions: dict[str, int] = {}  # session -> highest version pushed

    @property
    def connected(self) -> bool:
        return self._socket is not None

    @property
    def lost(self) -> bool:
        """The socket was lost and is not back yet (a first connect is no loss)."""
        return self._lost_at is not None

    def ensure_connected(self) -> bool:
        """Connect (and resubscribe every session) unless connected; True when connected."""
        if self._socket is not None:
            return True
        began = time.perf_counter()
        try:
            self._socket = websocket.create_connection(self.url, timeout=self.timeout)
        except (OSError, websocket.WebSocketException) as error:
            self._event(WSCONN, "connect", began, error=error)
            self._lost_at = self._lost_at or began
            return False
        self._event(WSCONN, "connect", began)
        for session in self.sessions:
            if not self.subscribe(session, self.tracker.last(session)):
                return False
        if self._lost_at is not None:
            self._event(WSRECONN, "reconnect", self._lost_at)
            self._lost_at = None
        return True

    def follow(self, session: str, since: int) -> None:
        """Subscribe to `session` from `since` on at the next (re)connect."""
        if session not in self.sessions:
            self.sessions.append(session)
        self.tracker.start(session, since)

    def subscribe(self, session: str, since: int) -> bool:
        self.follow(session, since)
        message = {"type": "subscribe", "session": session, "since": since}
        return self._request("subscribe", message, lambda m: _answers(m, "subscribed", session))

    def ping(self) -> bool:
        return self._request("ping", {"type": "ping"}, lambda m: m.get("type") == "pong")

    def await_version(self, session: str, version: int, began: float) -> bool:
        """Wait for the event of `session` at `version` (or later); `WS fanout` from `began`."""
        deadline = time.perf_counter() + self.timeout
        try:
            while self._versions.get(session, 0) < version:
                if self._receive(deadline) is None:
                    self._event(WS, "fanout", began, error=NoPush("no push within timeout"))
                    return False
        except Disconnected as error:
            if not error.graceful:  # else the reconnect's replay delivers it
                self._event(WS, "fanout", began, error=error)
            return False
        self._event(WS, "fanout", began)
        return True

    def close(self) -> None:
        """At the user's stop: a socket still lost counts its time as a failed reconnect."""
        if self._lost_at is not None:
            stopped = Disconnected("still disconnected when the user stopped")
            self._event(WSRECONN, "reconnect", self._lost_at, error=stopped)
            self._lost_at = None
        self._drop()

    # ---- internals ----

    def _request(self, name: str, message: dict[str, Any], done: Callable[[Any], bool]) -> bool:
        if self._socket is None:
            return False
        began = time.perf_counter()
        deadline = began + self.timeout
        try:
            try:
                self._socket.send(json.dumps(message))
            except (OSError, websocket.WebSocketException) as error:
                raise self._lose(self._close_left_behind(error)) from None
            while True:
                answer = self._receive(deadline)
                if answer is None:
                    raise self._lose(Disconnected(f"no {name} answer within {self.timeout}s"))
                if done(answer):
                    break
        except Disconnected as lost:
            if not lost.graceful:
                self._event(WS, name, began, error=lost)
            return False
        self._event(WS, name, began)
        return True

    def _close_left_behind(self, error: BaseException) -> Disconnected:
        """After a failed send: the close frame the server sent before it, if one waits
        in the receive buffer (the client's race with a graceful close), else the error."""
        socket = self._socket
        deadline = time.perf_counter() + CLOSE_FRAME_GRACE_SECONDS
        while socket is not None and time.perf_counter() < deadline:
            socket.settimeout(max(0.01, deadline - time.perf_counter()))
            try:
                opcode, data = _read_message(socket)
            except (OSError, websocket.WebSocketException):
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return closed_with(data)
        return lost_without_close(error)

    def _receive(self, deadline: float) -> Any:
        """One text message, parsed and accounted; None at the deadline; `Disconnected`."""
        socket = self._socket
        if socket is None:
            raise Disconnected("not connected")
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        socket.settimeout(remaining)
        try:
            opcode, data = _read_message(socket)
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as error:
            raise self._lose(lost_without_close(error)) from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise self._lose(closed_with(data))
        try:
            message = json.loads(data)
        except ValueError:
            return {}
        if isinstance(message, dict) and message.get("type") == "event":
            self._account(message)
        return message

    def _account(self, event: dict[str, Any]) -> None:
        session, seq, version = event.get("session"), event.get("seq"), event.get("version")
        if not isinstance(session, str) or not isinstance(seq, int):
            return
        step = self.tracker.observe(session, seq)
        now = time.perf_counter()
        if step.missing:
            gap = SequenceGap("events skipped")
            self._event(WS, "seq gap", now, error=gap, length=step.missing)
        if step.duplicate:
            self._event(WS, "seq duplicate", now, error=SequenceDuplicate("event delivered twice"))
        if isinstance(version, int) and version > self._versions.get(session, 0):
            self._versions[session] = version

    def _lose(self, error: Disconnected) -> Disconnected:
        """The socket is gone: report it once (a failure unless the server closed it
        gracefully), remember when, drop it."""
        now = time.perf_counter()
        self._event(WS, "disconnect", now, error=None if error.graceful else error)
        self._lost_at = self._lost_at or now  # a failed resubscribe keeps the first loss
        self._drop()
        return error

    def _drop(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                socket.close(timeout=1)

    def _event(
        self,
        request_type: str,
        name: str,
        began: float,
        error: BaseException | None = None,
        length: int = 0,
    ) -> None:
        """Fire one request event timed from `began` (perf_counter); its wall-clock start
        goes with it, so the timeline puts it in the chaos window it began in."""
        elapsed = time.perf_counter() - began
        self.fire(
            request_type=request_type,
            name=name,
            response_time=elapsed * 1000,
            response_length=length,
            exception=error,
            context={},
            start_time=time.time() - elapsed,
        )


def _read_message(socket: websocket.WebSocket) -> tuple[int, bytes]:
    """The next data message or close frame; pings are answered, pongs skipped.

    Unlike `recv_data`, a close frame is returned before any reply is attempted, so a
    reset after it cannot hide the code the server sent.
    """
    while True:
        receive_frame: Callable[[], Any] = socket.recv_frame
        frame = receive_frame()
        if frame.opcode in (
            websocket.ABNF.OPCODE_TEXT,
            websocket.ABNF.OPCODE_BINARY,
            websocket.ABNF.OPCODE_CONT,
        ):
            socket.cont_frame.validate(frame)
            socket.cont_frame.add(frame)
            if socket.cont_frame.is_fire(frame):
                opcode, whole = socket.cont_frame.extract(frame)
                data = whole.data
                return int(opcode), data.encode() if isinstance(data, str) else bytes(data)
        elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return websocket.ABNF.OPCODE_CLOSE, bytes(frame.data)
        elif frame.opcode == websocket.ABNF.OPCODE_PING:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                socket.pong(frame.data)


def _answers(message: Any, kind: str, session: str) -> bool:
    return (
        isinstance(message, dict)
        and message.get("type") == kind
        and message.get("session") == session
    )
