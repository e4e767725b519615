"""Fan-out between replicas over Redis pub/sub: one channel, the session id in the payload.

The writer publishes each event after COMMIT (best effort: a failed publish is counted,
and the hub's resync delivers the event anyway). Every replica runs `listen_forever`,
which feeds its hub and reports whether it is subscribed; while it is not, the hub
polls the event log instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from sandbox.images.session_state.errors import REDIS_UNAVAILABLE, ServiceError
from sandbox.images.session_state.hub import Hub
from sandbox.images.session_state.metrics import Metrics
from sandbox.images.session_state.model import Event, event_from_message
from sandbox.images.session_state.redisconn import RedisConnector

log = logging.getLogger("session_state.pubsub")
CHANNEL = "session-state:events"
MAX_BACKOFF = 5.0


class Publisher:
    def __init__(self, redis: RedisConnector, metrics: Metrics, timeout: float | None) -> None:
        self.redis = redis
        self.metrics = metrics
        self.timeout = timeout

    async def publish(self, event: Event) -> bool:
        if not self.redis.available():
            return False
        payload = json.dumps(event.to_message(), separators=(",", ":"))
        try:
            client = await self.redis.client()
            await asyncio.wait_for(client.publish(CHANNEL, payload), self.timeout)
        except REDIS_UNAVAILABLE as error:
            self.redis.failed()
            self.metrics.redis_errors.labels("publish").inc()
            log.warning(
                "publishing %s#%d failed: %s", event.session, event.seq, type(error).__name__
            )
            return False
        self.metrics.events_published.inc()
        return True


class Listener:
    def __init__(self, redis: RedisConnector, hub: Hub, metrics: Metrics) -> None:
        self.redis = redis
        self.hub = hub
        self.metrics = metrics
        self.connected = False

    async def listen_forever(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._listen()
            except REDIS_UNAVAILABLE as error:
                self.metrics.redis_errors.labels("subscribe").inc()
                if self.connected:
                    log.warning("pub/sub lost (%s): polling the event log", type(error).__name__)
                self._set_connected(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # the listener's outermost loop: log and subscribe again
                log.exception("pub/sub listener failed; subscribing again")
                self._set_connected(False)
                await asyncio.sleep(MAX_BACKOFF)
            else:
                backoff = 0.2

    async def _listen(self) -> None:
        client = await self.redis.client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            self._set_connected(True)
            self.hub.kick()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._received(message.get("data"))
        finally:
            self._set_connected(False)
            with contextlib.suppress(*REDIS_UNAVAILABLE):
                await asyncio.wait_for(pubsub.aclose(), 1.0)

    def _received(self, data: object) -> None:
        try:
            event = event_from_message(json.loads(str(data)))
        except (ValueError, ServiceError) as error:
            log.warning("ignoring a malformed pub/sub message: %s", error)
            return
        self.metrics.events_received.inc()
        self.hub.dispatch(event)

    def _set_connected(self, connected: bool) -> None:
        if connected and not self.connected:
            log.info("subscribed to redis pub/sub channel %s", CHANNEL)
        self.connected = connected
        self.metrics.pubsub_connected.set(1 if connected else 0)
