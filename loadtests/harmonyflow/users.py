"""The abstract users: they build the clients, hold the user's state, and offer the
actions the concrete users' `@task`s call (the locustfiles hold only the tasks).

Pacing and sizes come from environment variables, so a profile (or a person at the
CLI) tunes a run without editing a locustfile:

| variable               | default | meaning                                             |
|------------------------|---------|-----------------------------------------------------|
| `HF_WAIT_MIN/MAX`      | 0.5/1.5 | seconds between two tasks of one user               |
| `HF_SESSIONS_PER_USER` | 3       | sessions a REST user keeps alive                    |
| `HF_TIMEOUT`           | 10      | seconds before an HTTP or WebSocket wait gives up   |
| `HF_WS_PATH`           | /ws     | the WebSocket path on the same host                 |
| `HF_WS_WEIGHT`         | 1       | WebSocket users per REST user (Locust's `weight`)   |
| `HF_SEED`              | none    | seeds each user's choices (user number added)       |

Importing this module enables the timeline plugin (`--timeline-file`).
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid

from locust import FastHttpUser, User, between, events
from locust.contrib.fasthttp import FastHttpSession

from . import (
    plugin,  # noqa: F401  - registers the timeline plugin's listeners
    unanswered,
)
from .ledger import Ledger
from .rest import SessionApi
from .ws import SessionSocket, ws_url

# requests left without an answer get an UNANSWERED entry of their own
events.request.add_listener(unanswered.listener(events.request))  # type: ignore[no-untyped-call]


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    try:
        return float(text) if text else default
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a number") from None


WAIT_MIN = _env_float("HF_WAIT_MIN", 0.5)
WAIT_MAX = max(WAIT_MIN, _env_float("HF_WAIT_MAX", 1.5))
TIMEOUT = _env_float("HF_TIMEOUT", 10.0)
SESSIONS_PER_USER = max(1, int(_env_float("HF_SESSIONS_PER_USER", 3)))
# Sockets are cheap and a pod's loss is judged by how its sockets end: a profile that
# must see every pod's shutdown asks for many of them without more REST traffic.
WS_WEIGHT = max(1, int(_env_float("HF_WS_WEIGHT", 1)))
_numbers = itertools.count(1)


def _random() -> random.Random:
    seed = os.environ.get("HF_SEED", "").strip()
    return random.Random(f"{seed}-{next(_numbers)}") if seed else random.Random()


def _owner(kind: str) -> str:
    return f"locust-{kind}-{uuid.uuid4().hex[:12]}"


class SessionRestUser(FastHttpUser):
    """Works the session life cycle over REST; every acknowledged write is in its ledger."""

    abstract = True
    wait_time = between(WAIT_MIN, WAIT_MAX)
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
    """Subscribes to its own session over the WebSocket and measures what arrives there."""

    abstract = True
    wait_time = between(WAIT_MIN, WAIT_MAX)
    weight = WS_WEIGHT

    def on_start(self) -> None:
        events = self.environment.events.request
        http = FastHttpSession(
            self.host, events, user=self, connection_timeout=TIMEOUT, network_timeout=TIMEOUT
        )
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
