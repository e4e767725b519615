"""The abstract users: they build the clients, hold the user's state, and offer the
actions the concrete users' `@task`s call (the locustfiles hold only the tasks).

Pacing and sizes come from environment variables, so a profile (or a person at the
CLI) tunes a run without editing a locustfile:

| variable               | default | meaning                                             |
|------------------------|---------|-----------------------------------------------------|
| `HF_WAIT_MIN/MAX`      | 0.5/1.5 | seconds between two tasks of one user               |
| `HF_WS_WAIT_MIN/MAX`   | as above| the same for the WebSocket users only               |
| `HF_REST_USERS`        | none    | exactly so many REST users (Locust's `fixed_count`) |
| `HF_WS_USERS`          | none    | exactly so many WebSocket users (`fixed_count`)     |
| `HF_REST_READ_WEIGHT`  | 6       | the REST user's read task weight (its write share)  |
| `HF_SESSIONS_PER_USER` | 3       | sessions a REST user keeps alive                    |
| `HF_TIMEOUT`           | 10      | seconds before an HTTP or WebSocket wait gives up   |
| `HF_WS_PATH`           | /ws     | the WebSocket path on the same host                 |
| `HF_WS_WEIGHT`         | 1       | WebSocket users per REST user (Locust's `weight`)   |
| `HF_WS_REST_CONNECTIONS` | 1000  | REST connections the WebSocket users of a process share |
| `HF_SEED`              | none    | seeds each user's choices (user number added)       |

Importing this module enables the timeline plugin (`--timeline-file`).
"""

from __future__ import annotations

import functools
import gc
import itertools
import os
import random
import time
import uuid

from geventhttpclient.client import HTTPClientPool  # the locust CLI patches gevent first
from locust import FastHttpUser, User, between, events
from locust.contrib.fasthttp import FastHttpSession, insecure_ssl_context_factory

from . import (
    plugin,  # noqa: F401  - registers the timeline plugin's listeners
    unanswered,
)
from .ledger import Ledger
from .rest import SessionApi
from .ws import SessionSocket, ws_url

# requests left without an answer get an UNANSWERED entry of their own
events.request.add_listener(unanswered.listener(events.request))  # type: ignore[no-untyped-call]


def _freeze_what_the_users_hold(**_: object) -> None:
    """Once the users are spawned, move everything they hold out of the collector's way.

    Ten thousand subscribed users hold millions of long-lived objects (sockets, greenlets,
    frame buffers); each full collection of the cyclic GC walks them all and stops every
    greenlet for about a second, which shows as the p99 of every request in flight
    (bench/loadgen.py, 10,000 sockets: p99 ping 1.3 s, 0.64 s frozen). Frozen objects are
    never collected: what users that stop later leave behind stays until the process ends.
    """
    gc.freeze()


events.spawning_complete.add_listener(_freeze_what_the_users_hold)  # type: ignore[no-untyped-call]


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    try:
        return float(text) if text else default
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a number") from None


WAIT_MIN = _env_float("HF_WAIT_MIN", 0.5)
WAIT_MAX = max(WAIT_MIN, _env_float("HF_WAIT_MAX", 1.5))
TIMEOUT = _env_float("HF_TIMEOUT", 10.0)
# The capacity model (resilience/load/capacity.py) sets these: idle-heavy sockets pace
# apart from the REST users, an exact count of each kind, and the REST write share.
WS_WAIT_MIN = _env_float("HF_WS_WAIT_MIN", WAIT_MIN)
WS_WAIT_MAX = max(WS_WAIT_MIN, _env_float("HF_WS_WAIT_MAX", WAIT_MAX))
REST_USERS = max(0, int(_env_float("HF_REST_USERS", 0)))
WS_USERS = max(0, int(_env_float("HF_WS_USERS", 0)))
REST_READ_WEIGHT = max(1, int(_env_float("HF_REST_READ_WEIGHT", 6)))
SESSIONS_PER_USER = max(1, int(_env_float("HF_SESSIONS_PER_USER", 3)))
# Sockets are cheap and a pod's loss is judged by how its sockets end: a profile that
# must see every pod's shutdown asks for many of them without more REST traffic.
WS_WEIGHT = max(1, int(_env_float("HF_WS_WEIGHT", 1)))
# A WebSocket user holds its socket all the time but writes over REST now and then. A
# keep-alive REST connection of its own would be a second file descriptor per socket,
# halving the sockets one process can hold (`ulimit -n`); so its REST calls share one
# pool per process, large enough that a call waits for a connection only when that
# many calls hang at once.
WS_REST_CONNECTIONS = max(1, int(_env_float("HF_WS_REST_CONNECTIONS", 1000)))
_numbers = itertools.count(1)


def _random() -> random.Random:
    seed = os.environ.get("HF_SEED", "").strip()
    return random.Random(f"{seed}-{next(_numbers)}") if seed else random.Random()


@functools.cache
def ws_rest_pool() -> HTTPClientPool:
    """The REST connections the WebSocket users of this process share (HF_WS_REST_CONNECTIONS)."""
    return HTTPClientPool(
        concurrency=WS_REST_CONNECTIONS,
        connection_timeout=TIMEOUT,
        network_timeout=TIMEOUT,
        insecure=True,
        ssl_context_factory=insecure_ssl_context_factory,
    )


def _owner(kind: str) -> str:
    return f"locust-{kind}-{uuid.uuid4().hex[:12]}"


class SessionRestUser(FastHttpUser):
    """Works the session life cycle over REST; every acknowledged write is in its ledger."""

    abstract = True
    wait_time = between(WAIT_MIN, WAIT_MAX)
    fixed_count = REST_USERS
    connection_timeout = TIMEOUT
    network_timeout = TIMEOUT

    def on_start(self) -> None:
        self.random = _random()
        self.ledger = Ledger()
        self.api = SessionApi(
            self.client, self.environment.events.request, _owner("rest"), self.ledger
        )
        self.sessions: list[str] = []
        self.create_a_session()

    def create_a_session(self) -> None:
        """Create one more session, up to HF_SESSIONS_PER_USER (else replace one)."""
        if len(self.sessions) >= SESSIONS_PER_USER:
            self.replace_a_session()
            return
        created = self.api.create()
        if created is not None:
            self.sessions.append(created["id"])

    def read_a_session(self) -> None:
        session = self._pick()
        if session is not None:
            self.api.read(session)
            self._forget_gone(session)

    def replace_a_session(self) -> None:
        session = self._pick()
        if session is not None:
            self.api.replace(session)
            self._forget_gone(session)

    def delete_a_session(self) -> None:
        """Delete one session (keeping at least one), then check that it reads as gone."""
        if len(self.sessions) < 2:
            self.create_a_session()
            return
        session = self._pick()
        if session is not None and self.api.delete(session):
            self.api.read(session)
            self.sessions.remove(session)
            self.ledger.forget(session)

    def _pick(self) -> str | None:
        if not self.sessions:
            self.create_a_session()
        return self.random.choice(self.sessions) if self.sessions else None

    def _forget_gone(self, session: str) -> None:
        expected = self.ledger.expected(session)
        if expected is not None and expected.deleted and session in self.sessions:
            self.sessions.remove(session)


class SessionWsUser(User):
    """Subscribes to its own session over the WebSocket and measures what arrives there.

    Its socket is serviced all the time (`ws.Link`): between tasks, pings are answered
    and pushes checked, so a long `wait_time` leaves an idle session that stays
    connected, as a browser tab does.
    """

    abstract = True
    wait_time = between(WS_WAIT_MIN, WS_WAIT_MAX)
    weight = WS_WEIGHT
    fixed_count = WS_USERS

    def on_start(self) -> None:
        events = self.environment.events.request
        http = FastHttpSession(self.host, events, user=self, client_pool=ws_rest_pool())
        self.api = SessionApi(http, events, _owner("ws"), Ledger())
        path = os.environ.get("HF_WS_PATH", "/ws") or "/ws"
        self.socket = SessionSocket(ws_url(self.host or "", path), events.fire, TIMEOUT)
        self.session: str | None = None
        self._changed_while_away = False
        self._ready()

    def on_stop(self) -> None:
        self.socket.close()

    def round_trip(self) -> None:
        """One ping -> pong over the socket."""
        if self._ready():
            self.socket.ping()

    def fan_out(self) -> None:
        """Update the session over REST and wait for the push of that version."""
        if not self._ready() or self.session is None:
            return
        began = time.perf_counter()
        version = self.api.replace(self.session)
        if version is not None:
            self.socket.await_version(self.session, version, began)

    def _ready(self) -> bool:
        """A session (created over REST) and a connected socket subscribed to it."""
        if self.session is None:
            created = self.api.create()
            if created is None:
                return False
            self.session = str(created["id"])
            self.socket.follow(self.session, int(created["seq"]))
        if self.socket.lost and not self._changed_while_away:
            # What the user's other tab does while this one reconnects: the session changes,
            # and the resumed socket must replay that change. A service that resumes from
            # the newest event skips it, and the next push shows the gap.
            self._changed_while_away = True
            self.api.replace(self.session)
        connected = self.socket.ensure_connected()
        if connected:
            self._changed_while_away = False
        return connected
