"""Wiring and lifecycle: build the parts, serve 8080 and 8443, stop on SIGTERM.

Start-up never waits for a dependency: the process listens at once (liveness 200),
migrates PostgreSQL in the background (retrying) and is ready when PostgreSQL and
Redis answer. With AMQP_URLS set, every write also fills the outbox and a `Relay`
task publishes it to RabbitMQ; readiness never depends on the broker (an outage only
delays events), so the broker is no part of the health checks.

Shutdown, on SIGTERM or SIGINT, within SHUTDOWN_TIMEOUT_SECONDS:

1. readiness fails at once (the pod leaves the endpoints), and for DRAIN_DELAY_SECONDS
   the service serves on, new WebSockets included, while the ingress catches up;
2. then every WebSocket is closed with 1001, and new ones are refused with 503;
3. the listeners close and in-flight requests finish;
4. background tasks stop, the pools close; exit 0.

The `slow-shutdown` fault waits SLOW_SHUTDOWN_SECONDS between 1 and 2, holding every
request that arrives meanwhile (the probes excepted), then drains as above within
SHUTDOWN_TIMEOUT_SECONDS: a pod that outlives its grace period, whose clients the
kubelet's SIGKILL cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any

import asyncpg
from aiohttp import web

from sandbox.images.session_state import health, rest, websocket
from sandbox.images.session_state.cache import SessionCache
from sandbox.images.session_state.config import Settings
from sandbox.images.session_state.db import Database
from sandbox.images.session_state.errors import DB_UNAVAILABLE
from sandbox.images.session_state.faults import dependency_timeout, should_crash
from sandbox.images.session_state.hub import Hub, ReplayGate, replay_slots
from sandbox.images.session_state.metrics import Metrics
from sandbox.images.session_state.middleware import MIDDLEWARES
from sandbox.images.session_state.model import MAX_BODY_BYTES
from sandbox.images.session_state.pubsub import Listener, Publisher
from sandbox.images.session_state.redisconn import RedisConnector
from sandbox.images.session_state.relay import BrokerLink, Relay
from sandbox.images.session_state.resets import reset_connections
from sandbox.images.session_state.service import AfterCommit, SessionService
from sandbox.images.session_state.state import RUNTIME, Runtime
from sandbox.images.session_state.writes import CommittedWrites, WriteBehind, WritePath

log = logging.getLogger("session_state")
MIGRATION_RETRY = 1.0
# The listen backlog: Linux's net.core.somaxconn default since 5.4, which caps a larger
# one anyway. aiohttp's default of 128 overflows in a reconnect storm (a third of 10,000
# sockets arriving at two pods within the clients' backoff), and each SYN dropped then
# costs its client a 1 s retransmission.
LISTEN_BACKLOG = 4096
CACHE_REPAIR_INTERVAL = 1.0


def build_runtime(settings: Settings) -> tuple[Runtime, WriteBehind | None]:
    metrics = Metrics()
    timings, fault = settings.timings, settings.fault
    db_timeout = dependency_timeout(fault, "postgresql", timings.db_timeout)
    redis_timeout = dependency_timeout(fault, "redis", timings.redis_timeout)
    db = Database(settings.db, db_timeout, settings.db_pool_size, bool(settings.amqp), fault)
    redis = RedisConnector(settings.redis, redis_timeout)
    hub = Hub(ReplayGate(db, replay_slots(settings.db_pool_size)), metrics)
    cache = SessionCache(redis, timings.cache_ttl, metrics)
    after_commit = AfterCommit(hub, cache, Publisher(redis, metrics, redis_timeout))
    write_behind = (
        WriteBehind(db, after_commit, timings.flush_interval)
        if settings.fault.write_behind
        else None
    )
    writes: WritePath = write_behind or CommittedWrites(db, after_commit)
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        db=db,
        redis=redis,
        hub=hub,
        listener=Listener(redis, hub, metrics),
        service=SessionService(db, cache, writes, trust_cache=fault.trusts_cache),
    )
    return runtime, write_behind


def build_relay(runtime: Runtime) -> Relay | None:
    """The outbox relay, when AMQP_URLS names brokers (else no outbox rows are written)."""
    settings = runtime.settings
    if not settings.amqp:
        return None
    link = BrokerLink(settings.amqp, runtime.metrics)
    ready = lambda: runtime.service.ready_for_writes  # noqa: E731
    return Relay(runtime.db, link, runtime.metrics, settings.fault, ready)


def build_apps(runtime: Runtime) -> tuple[web.Application, web.Application]:
    """The 8080 app (REST, health, metrics, /ws) and the 8443 app (/ws, health)."""
    apps = []
    for port_app in ("http", "ws"):
        app = web.Application(middlewares=MIDDLEWARES, client_max_size=MAX_BODY_BYTES)
        app[RUNTIME] = runtime
        health.add_routes(app, with_metrics=port_app == "http")
        websocket.add_routes(app)
        if port_app == "http":
            rest.add_routes(app)
        apps.append(app)
    return apps[0], apps[1]


async def migrate_until_done(runtime: Runtime) -> None:
    while True:
        try:
            applied = await runtime.db.migrate()
        except DB_UNAVAILABLE as error:
            runtime.metrics.db_errors.labels("migrate").inc()
            log.warning(
                "PostgreSQL %s not usable yet (%s: %s); retrying",
                runtime.settings.db.describe(),
                type(error).__name__,
                error,
            )
            await asyncio.sleep(MIGRATION_RETRY)
            continue
        except asyncpg.PostgresError as error:
            runtime.metrics.db_errors.labels("migrate").inc()
            log.error("migrating PostgreSQL failed (%s: %s); retrying", type(error).__name__, error)
            await asyncio.sleep(MIGRATION_RETRY * 5)
            continue
        log.info("schema ready (migrations applied now: %s)", applied or "none")
        runtime.service.ready_for_writes = True
        return


async def repair_cache_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(CACHE_REPAIR_INTERVAL)
        try:
            await runtime.service.cache.repair()
        except Exception:  # the repair loop's outermost level: log and go on
            log.exception("cache repair failed")


async def crash_when_due(runtime: Runtime, exit_code: list[int]) -> None:
    while not should_crash(
        runtime.settings.fault, runtime.uptime(), runtime.settings.timings.crash_after
    ):
        await asyncio.sleep(0.1)
    log.error("crash fault: exiting with code 1")
    exit_code.append(1)
    runtime.stopping.set()


class Server:
    """The running process: runners, background tasks, signal handling."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime, self.write_behind = build_runtime(settings)
        self.relay = build_relay(self.runtime)
        self.runners: list[web.AppRunner] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.exit_code: list[int] = []

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.create_task(coroutine, name=name))

    async def start(self) -> None:
        runtime, settings = self.runtime, self.settings
        await runtime.db.open()
        http_app, ws_app = build_apps(runtime)
        for app, port in ((http_app, settings.http_port), (ws_app, settings.ws_port)):
            runner = web.AppRunner(
                app,
                handle_signals=False,
                shutdown_timeout=settings.timings.shutdown_timeout,
                access_log_format='%a "%r" %s %b %Tfs',
            )
            await runner.setup()
            self.runners.append(runner)
            site = web.TCPSite(
                runner, settings.bind_host, port, reuse_address=True, backlog=LISTEN_BACKLOG
            )
            await site.start()
        timings = settings.timings
        self._spawn(migrate_until_done(runtime), "migrate")
        self._spawn(runtime.listener.listen_forever(), "pubsub")
        pubsub_up = lambda: runtime.listener.connected  # noqa: E731
        self._spawn(
            runtime.hub.resync_forever(pubsub_up, timings.poll_interval, timings.resync_interval),
            "resync",
        )
        self._spawn(repair_cache_forever(runtime), "cache-repair")
        if self.relay is not None:
            self._spawn(self.relay.run_forever(), "outbox-relay")
        if self.write_behind is not None:
            self._spawn(self.write_behind.flush_forever(runtime.metrics.write_buffer.set), "flush")
        if settings.fault.crashes:
            self._spawn(crash_when_due(runtime, self.exit_code), "crash")
        log.info(
            "session-state %s%s listening on %s:%d and :%d; db %s, redis %s, amqp %s",
            settings.version,
            f" (fault {settings.fault.name})" if settings.fault.name else "",
            settings.bind_host,
            settings.http_port,
            settings.ws_port,
            settings.db.describe(),
            settings.redis.describe(),
            ", ".join(node.describe() for node in settings.amqp) or "off",
        )

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.fault.ignores_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif self.settings.fault.exits_abruptly:
            loop.add_signal_handler(signal.SIGTERM, self._exit_abruptly)
        else:
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_signal, "SIGINT")

    def _on_signal(self, name: str) -> None:
        if not self.runtime.stopping.is_set():
            log.info("%s received: readiness fails, draining", name)
        self.runtime.stopping.set()

    def _exit_abruptly(self) -> None:
        """The `abrupt-exit` fault: what a service with no SIGTERM handling does, made
        deterministic. Its clients' connections are reset, not closed, whatever the kernel
        would have done with their buffers."""
        ports = (self.settings.http_port, self.settings.ws_port)
        reset = reset_connections(ports)
        log.info("SIGTERM, abrupt-exit fault: exiting at once, %d connections reset", reset)
        logging.shutdown()
        os._exit(0)

    async def wait_and_stop(self) -> int:
        await self.runtime.stopping.wait()
        if self.exit_code:
            await self._abort()
            return self.exit_code[0]
        if self.settings.fault.drains_slowly:
            seconds = self.settings.timings.slow_shutdown
            log.info(
                "slow-shutdown fault: holding requests and sockets %ss before draining", seconds
            )
            await asyncio.sleep(seconds)
        try:
            await asyncio.wait_for(self._drain(), self.settings.timings.shutdown_timeout)
        except TimeoutError:
            log.warning(
                "shutdown took longer than %ss; exiting", self.settings.timings.shutdown_timeout
            )
            await self._abort()
        log.info("stopped; exiting 0")
        return 0

    async def _drain(self) -> None:
        timings = self.settings.timings
        self.runtime.draining.set()
        if self.write_behind is not None:
            lost = self.write_behind.drop()
            self._cancel_tasks()
            log.info("drops-writes fault: exiting without flushing %d acknowledged writes", lost)
        await asyncio.sleep(timings.drain_delay)
        self.runtime.closing.set()
        await websocket.close_all_sockets(self.runtime, min(5.0, timings.shutdown_timeout / 2))
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()
        await self._abort()

    def _cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def _abort(self) -> None:
        self._cancel_tasks()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        for runner in self.runners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), 1.0)
        self.runners.clear()
        await self.runtime.redis.close()
        await self.runtime.db.close()


async def serve(settings: Settings) -> int:
    server = Server(settings)
    server.install_signals()
    try:
        await server.start()
    except OSError as error:
        log.error("cannot listen on %s: %s", settings.bind_host, error.strerror or error)
        await server._abort()
        return 1
    return await server.wait_and_stop()
