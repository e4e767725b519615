"""What the handlers share: one `Runtime` per process, reached through `request.app[RUNTIME]`."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.images.session_state.config import Settings
from sandbox.images.session_state.db import Database
from sandbox.images.session_state.hub import Hub
from sandbox.images.session_state.metrics import Metrics
from sandbox.images.session_state.pubsub import Listener
from sandbox.images.session_state.redisconn import RedisConnector
from sandbox.images.session_state.service import SessionService


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    db: Database
    redis: RedisConnector
    hub: Hub
    listener: Listener
    service: SessionService
    started: float = field(default_factory=time.monotonic)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    draining: asyncio.Event = field(default_factory=asyncio.Event)  # set when the drain begins
    # set when the drain delay is over and every socket is closed with 1001: until then the
    # ingress may still route new sockets here, and they are served like any other
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    draw: random.Random = field(default_factory=random.Random)  # each socket's max-age jitter

    def uptime(self) -> float:
        return time.monotonic() - self.started


RUNTIME = web.AppKey("runtime", Runtime)
