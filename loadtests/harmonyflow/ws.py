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

A reader per socket (a greenlet under Locust's gevent, a thread elsewhere) reads every
frame as it arrives, between tasks too, as a browser does: it answers the server's
heartbeat pings at once (an idle session stays connected as long as the server keeps
it), checks each pushed event's seq as it comes, and hands replies to the request
waiting for them. The user's greenlet only sends and waits, one request at a time:
replies are correlated by order (one ping in flight) and events by (session, version).
Every wait has a deadline; an idle reader wakes once per socket timeout.

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
import threading
import time
from collections import deque
from collections.abc import Callable
from socket import SHUT_RDWR
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


class Link:
    """One open socket and the reader that services it: the only one that reads it.

    The reader runs all the time, as a browser's socket does: it answers the server's
    pings at once, accounts every pushed event as it arrives (`on_event`), and hands
    the replies to requests (`replies`) to whoever waits for them. Under Locust,
    gevent makes the thread a greenlet; in a plain process it is a thread. A loss is
    recorded once (`lose`), by whichever side sees it first.
    """

    def __init__(
        self,
        socket: websocket.WebSocket,
        on_event: Callable[[dict[str, Any]], None],
        on_lost: Callable[[Disconnected], None],
    ) -> None:
        self.socket = socket
        self.replies: deque[Any] = deque()
        self.news = threading.Event()  # set on every reply, push and loss
        self.loss: Disconnected | None = None
        self.closing = False
        self._on_event = on_event
        self._on_lost = on_lost
        self._reader = threading.Thread(target=self._read_forever, daemon=True, name="ws-reader")

    def start(self) -> None:
        self._reader.start()

    def lose(self, error: Disconnected) -> Disconnected:
        """Record the loss (reported once, unless we closed the socket); the first loss."""
        if self.loss is None and not self.closing:
            self.loss = error
            self._on_lost(error)
        self.news.set()
        return self.loss or error

    def wait(self, ready: Callable[[], bool], deadline: float) -> bool:
        """Until `ready()` or the socket is lost (True), or the deadline passes (False)."""
        while True:
            self.news.clear()
            if ready() or self.loss is not None:
                return True
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.news.wait(remaining)

    def close(self) -> None:
        """Close frame (best effort), then shut the socket, which also ends the reader."""
        self.closing = True
        socket = self.socket
        with contextlib.suppress(OSError, websocket.WebSocketException):
            if self.loss is None:
                socket.send_close()
        raw = socket.sock
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(SHUT_RDWR)  # wakes a reader blocked in recv, thread or greenlet
        _shut(socket)
        self.news.set()

    def _read_forever(self) -> None:
        """Read until the socket is lost or closed. An idle socket only wakes the reader
        at each socket timeout (no busy loop); pings are answered inside the read."""
        while self.loss is None and not self.closing:
            try:
                opcode, data = _read_message(self.socket)
            except websocket.WebSocketTimeoutException:
                continue  # idle: nothing to read is no failure
            except (OSError, websocket.WebSocketException) as error:
                self.lose(lost_without_close(error))
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.lose(closed_with(data))
                _shut(self.socket)
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = {}
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "event":
            self._on_event(message)
        elif kind == "ping":
            return  # the server's application heartbeat: nothing to answer, nobody waits
        else:
            self.replies.append(message)
        self.news.set()


class SessionSocket:
    """One WebSocket with its subscriptions; reconnects and resubscribes with `since`."""

    def __init__(self, url: str, fire: Fire, timeout: float = 5.0) -> None:
        self.url = url
        self.fire = fire
        self.timeout = timeout
        self.tracker = SequenceTracker()
        self.sessions: list[str] = []
        self._link: Link | None = None
        self._lost_at: float | None = None  # perf_counter when the socket was lost
        self._versions: dict[str, int] = {}  # session -> highest version pushed
        self._pushed_at: dict[str, float] = {}  # session -> when that version arrived

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.loss is None

    @property
    def lost(self) -> bool:
        """The socket was lost and is not back yet (a first connect is no loss)."""
        return self._lost_at is not None

    def ensure_connected(self) -> bool:
        """Connect (and resubscribe every session) unless connected; True when connected."""
        if self.connected:
            return True
        self._drop()  # a socket the reader found lost
        lost_at = self._lost_at
        began = time.perf_counter()
        try:
            # No UTF-8 check of text frames by websocket-client (pure Python, the costliest
            # step of a push): the JSON decoding of every frame checks it anyway.
            socket = websocket.create_connection(
                self.url, timeout=self.timeout, skip_utf8_validation=True
            )
        except (OSError, websocket.WebSocketException) as error:
            self._event(WSCONN, "connect", began, error=error)
            self._lost_at = self._lost_at or began
            return False
        self._event(WSCONN, "connect", began)
        self._link = Link(socket, self._account, self._report_loss)
        self._link.start()
        for session in self.sessions:
            if not self.subscribe(session, self.tracker.last(session)):
                return False
        if lost_at is not None and self.connected:  # not lost again at once
            self._event(WSRECONN, "reconnect", lost_at)
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
        """Wait for the event of `session` at `version` (or later); `WS fanout` from `began`
        to the moment the reader took the event in."""
        link = self._link
        if link is None:
            return False
        deadline = time.perf_counter() + self.timeout
        if not link.wait(lambda: self._versions.get(session, 0) >= version, deadline):
            self._event(WS, "fanout", began, error=NoPush("no push within timeout"))
            return False
        if self._versions.get(session, 0) < version:  # the socket was lost first
            loss = link.loss or Disconnected("not connected")
            if not loss.graceful:  # else the reconnect's replay delivers it
                self._event(WS, "fanout", began, error=loss)
            return False
        arrived = max(began, self._pushed_at.get(session, began))
        self._event(WS, "fanout", began, ended=arrived)
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
        link = self._link
        if link is None or link.loss is not None:
            return False
        began = time.perf_counter()
        deadline = began + self.timeout
        link.replies.clear()  # answers to requests that were given up on
        try:
            try:
                link.socket.send(json.dumps(message))
            except (OSError, websocket.WebSocketException) as error:
                raise self._close_left_behind(link, error) from None
            answer = Answer(link.replies, done)
            if not link.wait(answer.arrived, deadline):
                raise self._lose(link, Disconnected(f"no {name} answer within {self.timeout}s"))
            if not answer.found and link.loss is not None:
                raise link.loss
        except Disconnected as lost:
            if not lost.graceful:
                self._event(WS, name, began, error=lost)
            return False
        self._event(WS, name, began)
        return True

    def _close_left_behind(self, link: Link, error: BaseException) -> Disconnected:
        """After a failed send: the close frame the server sent before it, if the reader
        finds one in the receive buffer (the client's race with a graceful close), else
        the error."""
        link.wait(lambda: False, time.perf_counter() + CLOSE_FRAME_GRACE_SECONDS)
        return self._lose(link, link.loss or lost_without_close(error))

    def _account(self, event: dict[str, Any]) -> None:
        """A pushed event, checked as it arrives (by the reader, between tasks too)."""
        session, seq, version = event.get("session"), event.get("seq"), event.get("version")
        if not isinstance(session, str) or not isinstance(seq, int):
            return
        step = self.tracker.observe(session, seq)
        if step.missing or step.duplicate:
            now = time.perf_counter()
            if step.missing:
                gap = SequenceGap("events skipped")
                self._event(WS, "seq gap", now, error=gap, length=step.missing)
            if step.duplicate:
                duplicate = SequenceDuplicate("event delivered twice")
                self._event(WS, "seq duplicate", now, error=duplicate)
        if isinstance(version, int) and version > self._versions.get(session, 0):
            self._versions[session] = version
            self._pushed_at[session] = time.perf_counter()

    def _report_loss(self, error: Disconnected) -> None:
        """The socket is gone: report it once (a failure unless the server closed it
        gracefully), remember when."""
        now = time.perf_counter()
        self._event(WS, "disconnect", now, error=None if error.graceful else error)
        self._lost_at = self._lost_at or now  # a failed resubscribe keeps the first loss

    def _lose(self, link: Link, error: Disconnected) -> Disconnected:
        """We gave up on the socket: the loss (the reader's, if it saw one first), dropped."""
        loss = link.lose(error)
        self._drop()
        return loss

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()

    def _event(
        self,
        request_type: str,
        name: str,
        began: float,
        error: BaseException | None = None,
        length: int = 0,
        ended: float | None = None,
    ) -> None:
        """Fire one request event timed from `began` to `ended` (perf_counter, default
        now); its wall-clock start goes with it, so the timeline puts it in the chaos
        window it began in."""
        now = time.perf_counter()
        elapsed = (now if ended is None else ended) - began
        self.fire(
            request_type=request_type,
            name=name,
            response_time=elapsed * 1000,
            response_length=length,
            exception=error,
            context={},
            start_time=time.time() - (now - began),
        )


class Answer:
    """The reply a request waits for, looked for among the replies the reader handed over
    (the others are answers to requests given up on, and are dropped)."""

    def __init__(self, replies: deque[Any], done: Callable[[Any], bool]) -> None:
        self.replies = replies
        self.done = done
        self.found = False

    def arrived(self) -> bool:
        while not self.found and self.replies:
            self.found = self.done(self.replies.popleft())
        return self.found


def _shut(socket: websocket.WebSocket) -> None:
    """Close the socket without websocket-client's close handshake, which reads."""
    shutdown: Callable[[], None] = socket.shutdown
    with contextlib.suppress(OSError, websocket.WebSocketException):
        shutdown()


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
