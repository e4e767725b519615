"""The transactional outbox and its relay to RabbitMQ, with the consumer-side verdict.

Units first (AMQP_URLS, redaction, the relay's pure pieces), then the service on real
PostgreSQL and Redis with one real RabbitMQ node on 127.0.6.30 (the 127.0.6.x range
keeps clear of the 3-node cluster tests on 127.0.5.x). The node runs with an epmd of
its own on a free port, bound to its loopback address, and both are stopped (by
process group) at teardown. The relay's failover is exercised by listing a dead
node (127.0.6.31, nothing listening) first in AMQP_URLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from resilience.broker import EventCollector, event_verdict
from sandbox.images.session_state import config as config_module
from sandbox.images.session_state import db as db_module
from sandbox.images.session_state import relay as relay_module
from sandbox.images.session_state.config import (
    ConfigError,
    parse_amqp_urls,
    parse_db_url,
    parse_settings,
)
from sandbox.images.session_state.db import Database, OutboxRow, outbox_payload, routing_key
from sandbox.images.session_state.faults import FAULTS, HEALTHY
from sandbox.images.session_state.metrics import Metrics
from sandbox.images.session_state.model import CreateRequest, Event
from sandbox.images.session_state.relay import (
    BrokerFailed,
    BrokerLink,
    LinkState,
    Relay,
    failover_order,
    message_for,
    next_backoff,
    transition_message,
)
from tests.sandbox.session_state.servers import (
    DB_PASSWORD,
    Postgres,
    Service,
    StartService,
    needs_servers,
    postgres,
    redis_server,
    start_service,
    wait_until,
)

__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest
API = "/api/v1/sessions"
RABBIT_HOST, DEAD_HOST, SECOND_HOST = "127.0.6.30", "127.0.6.31", "127.0.6.32"
AMQP_USER, AMQP_PASSWORD = "harmonyflow", "test-only-amqp-password-5d2e"
RABBIT_SERVER = next(
    Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/sbin/rabbitmq-server"),
    Path("/usr/lib/rabbitmq/bin/rabbitmq-server"),
)
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
BASE = {"DB_URL": "postgresql://app@127.0.0.1:5432/app", "REDIS_URL": "redis://127.0.0.1:6379"}


# ---- units: configuration ----


@pytest.mark.parametrize(
    ("text", "nodes"),
    [
        pytest.param("", [], id="unset-means-off"),
        pytest.param("  ", [], id="blank-means-off"),
        pytest.param(
            "amqp://u@h1:5672/,amqp://u@h2:5673/",
            ["amqp://u@h1:5672/", "amqp://u@h2:5673/"],
            id="two-nodes",
        ),
        pytest.param("amqp://u@h", ["amqp://u@h:5672/"], id="default-port"),
        pytest.param("amqps://u@h/", ["amqps://u@h:5671/"], id="tls-default-port"),
        pytest.param("amqp://u@h/v%2Fh", ["amqp://u@h:5672/v/h"], id="vhost"),
    ],
)
def test_parse_amqp_urls(text: str, nodes: list[str]) -> None:
    assert [node.describe() for node in parse_amqp_urls(text, "")] == nodes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("http://u:pw-x@h/", "node 1: scheme must be amqp or amqps", id="scheme"),
        pytest.param("amqp://u@h/,", "node 2 is empty", id="trailing-comma"),
        pytest.param("amqp://u:pw-x@/", "node 1: expected amqp://user@host", id="no-host"),
        pytest.param("amqp://u:pw-x@h:70000/", "node 1: not a URL", id="port-range"),
        pytest.param("amqp://u:pw-x@h:0/", "node 1: port must be", id="port-zero"),
        pytest.param("amqp://u:pw-x@h:x/", "node 1: not a URL", id="port-text"),
        pytest.param("amqp://h/", "node 1: a user is required", id="no-user"),
        pytest.param("amqp://u:pw-x@h/?heartbeat=5", "node 1: query", id="query"),
    ],
)
def test_bad_amqp_urls_are_one_line_without_the_password(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_settings({**BASE, "AMQP_URLS": text}, [])
    text_of = str(error.value)
    assert text_of.startswith("AMQP_URLS: ") and "\n" not in text_of and "pw-x" not in text_of


def test_amqp_passwords_are_secrets_and_the_secret_env_wins() -> None:
    env = {**BASE, "AMQP_URLS": "amqp://u:in-url@h1/,amqp://u@h2/", "SECRET_AMQP_PASSWORD": "p@ss"}
    settings = parse_settings(env, [])
    assert [n.url for n in settings.amqp] == [
        "amqp://u:p%40ss@h1:5672/",
        "amqp://u:p%40ss@h2:5672/",
    ]
    assert settings.redact("auth p@ss / p%40ss failed") == "auth *** / *** failed"
    assert "p@ss" not in repr(settings) and "p%40ss" not in repr(settings.amqp)
    from_url = parse_settings({**BASE, "AMQP_URLS": "amqp://u:in-url@h1/"}, [])
    assert from_url.redact("x in-url y") == "x *** y"
    assert parse_settings(BASE, []).amqp == ()


# ---- units: the outbox payload and the relay's pure pieces ----


def test_outbox_payload_and_message() -> None:
    event = Event("s1", 3, 3, "deleted", None, "2026-01-01T00:00:00+00:00")
    payload = outbox_payload(event, "e-1")
    assert payload == {
        "event_id": "e-1",
        "session_id": "s1",
        "version": 3,
        "kind": "deleted",
        "occurred_at": "2026-01-01T00:00:00+00:00",
    }
    message = message_for(OutboxRow(7, "e-1", routing_key("deleted"), payload))
    assert message.message_id == "e-1" and message.delivery_mode.value == 2
    assert message.content_type == "application/json" and message.type == "session.deleted"
    assert b'"event_id":"e-1"' in message.body


@pytest.mark.parametrize(
    ("nodes", "preferred", "order"),
    [
        pytest.param(3, 0, [0, 1, 2], id="first"),
        pytest.param(3, 2, [2, 0, 1], id="last-good-first"),
        pytest.param(3, 4, [1, 2, 0], id="wraps"),
        pytest.param(1, 5, [0], id="single"),
        pytest.param(0, 0, [], id="none"),
    ],
)
def test_failover_order(nodes: int, preferred: int, order: list[int]) -> None:
    assert failover_order(nodes, preferred) == order


def test_backoff_doubles_and_is_bounded() -> None:
    waits, wait = [], 0.0
    for _ in range(8):
        wait = next_backoff(wait)
        waits.append(wait)
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


UP_A, UP_B = LinkState(node="amqp://u@a:5672/"), LinkState(node="amqp://u@b:5672/")


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        pytest.param(LinkState(), UP_A, "connected to RabbitMQ amqp://u@a:5672/", id="up"),
        pytest.param(UP_A, UP_A, None, id="still-up"),
        pytest.param(UP_A, UP_B, "connected to RabbitMQ amqp://u@b:5672/", id="failed-over"),
        pytest.param(
            UP_A, LinkState(problem="ConnectionError"), "lost RabbitMQ amqp://u@a:5672/", id="lost"
        ),
        pytest.param(
            LinkState(problem="a"), LinkState(problem="b"), "no RabbitMQ node reachable", id="new"
        ),
        pytest.param(LinkState(problem="a"), LinkState(problem="a"), None, id="retry-is-quiet"),
    ],
)
def test_state_changes_are_logged_once(
    before: LinkState, after: LinkState, message: str | None
) -> None:
    line = transition_message(before, after)
    assert (line is None) == (message is None)
    if message is not None:
        assert line is not None and line.startswith(message)


def test_drops_events_is_a_fault_of_the_table() -> None:
    fault = FAULTS["drops-events"]
    assert fault.drops_events and not fault.write_behind and fault.readiness == "checked"


# ---- one real RabbitMQ node ----


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class RabbitNode:
    """rabbitmq-server on RABBIT_HOST with its own epmd; stop() and start() keep its data."""

    host: str = RABBIT_HOST
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hf-rmq-")))
    port: int = 0
    epmd_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    epmd: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or _free_port(self.host)
        self.epmd_port = self.epmd_port or _free_port(self.host)
        cookie = self.directory / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.host}:{self.port}\n"
            "loopback_users = none\n"
            f"default_user = {AMQP_USER}\n"
            f"default_pass = {AMQP_PASSWORD}\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "env.conf").write_text("")

    @property
    def url(self) -> str:
        return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{self.host}:{self.port}/"

    @property
    def service_url(self) -> str:
        return f"amqp://{AMQP_USER}@{self.host}:{self.port}/"

    @property
    def service_urls(self) -> str:
        """AMQP_URLS for a pod: a dead node first (failover), no password (the Secret has it)."""
        dead = f"amqp://{AMQP_USER}@{DEAD_HOST}:{_free_port(DEAD_HOST)}/"
        return f"{dead},amqp://{AMQP_USER}@{self.host}:{self.port}/"

    def _env(self) -> dict[str, str]:
        d = self.directory
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(d),
            "RABBITMQ_NODENAME": f"hf-outbox@{self.host}",
            "RABBITMQ_USE_LONGNAME": "true",
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "env.conf"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_DIST_PORT": str(_free_port(self.host)),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                f"-kernel inet_dist_use_interface {{{self.host.replace('.', ',')}}}"
                " -start_epmd false"
            ),
        }

    def start(self) -> None:
        if self.epmd is None:
            self.epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port), "-address", self.host],
                env=self._env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        with open(self.directory / "rabbitmq.out", "ab") as out:
            self.process = subprocess.Popen(
                [str(RABBIT_SERVER)],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,  # its own group: stop() ends beam and its helpers
            )
        wait_until(self._accepts, 90, f"RabbitMQ on {self.host}:{self.port}", every=0.2)

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            out = (self.directory / "rabbitmq.out").read_text(errors="replace")
            raise AssertionError(f"rabbitmq-server exited {self.process.returncode}: {out[-2000:]}")
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process, 30)
            self.process = None

    def remove(self) -> None:
        self.stop()
        if self.epmd is not None:
            _stop_group(self.epmd, 10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # helpers left in the group
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    if not RABBIT_SERVER.exists():
        pytest.fail(f"rabbitmq-server is not installed ({RABBIT_SERVER}); run `make setup`")
    node = RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.remove()


# ---- the service with the broker ----


def start_relaying(start_service: StartService, rabbit: RabbitNode, *args: str) -> Service:
    service = start_service(
        *args, AMQP_URLS=rabbit.service_urls, SECRET_AMQP_PASSWORD=AMQP_PASSWORD
    )
    service.wait_ready()
    wait_until(lambda: metric(service, "session_state_broker_connected") == 1, 30, "the relay up")
    return service


def write_some(service: Service, sessions: int) -> list[tuple[str, int]]:
    """Per session: create, patch, delete; every write's (session, version) as answered."""
    acknowledged = []
    for n in range(sessions):
        created = service.request("POST", API, {"owner": "outbox", "state": {"n": n}})
        assert created.status == 201, created.body
        session = created.body["id"]
        patched = service.request("PATCH", f"{API}/{session}", {"m": n})
        assert patched.status == 200, patched.body
        deleted = service.request("DELETE", f"{API}/{session}")
        assert deleted.status in (200, 204), deleted.body
        acknowledged += [(session, 1), (session, 2), (session, 3)]
    return acknowledged


def metric(service: Service, name: str) -> float:
    text = service.request("GET", "/metrics").body
    found = re.search(rf"^{name}(?:_total)? ([0-9.e+-]+)$", str(text), re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


def unpublished(postgres: Postgres, acknowledged: list[tuple[str, int]]) -> int:
    sessions = sorted({session for session, _ in acknowledged})
    rows = postgres.query(
        "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL"
        " AND payload->>'session_id' = ANY($1::text[])",
        sessions,
    )
    return int(rows[0]["n"])


def check_no_secret(*services: Service) -> None:
    for service in services:
        assert AMQP_PASSWORD not in service.output(), "the AMQP password leaked into the log"


@needs_servers
def test_without_amqp_no_outbox_rows_are_written(
    start_service: StartService, postgres: Postgres
) -> None:
    service = start_service()
    service.wait_ready()
    acknowledged = write_some(service, 2)
    sessions = sorted({session for session, _ in acknowledged})
    rows = postgres.query(
        "SELECT count(*) AS n FROM outbox WHERE payload->>'session_id' = ANY($1::text[])", sessions
    )
    assert rows[0]["n"] == 0
    assert metric(service, "session_state_broker_connected") == 0


@needs_servers
def test_every_write_reaches_the_collector_exactly_once(
    start_service: StartService, postgres: Postgres, rabbit: RabbitNode
) -> None:
    with EventCollector([rabbit.url]) as collector:
        pods = [start_relaying(start_service, rabbit) for _ in range(2)]  # two relays, one table
        acknowledged = write_some(pods[0], 6) + write_some(pods[1], 6)
        wanted = set(acknowledged)
        collector.wait_for(lambda seen: wanted <= {(d.session_id, d.version) for d in seen}, 60)
        deliveries = collector.deliveries()
    verdict = event_verdict(acknowledged, deliveries)
    assert verdict.failures() == [], verdict.summary()
    mine = [d for d in deliveries if (d.session_id, d.version) in wanted]
    assert len(mine) == len(wanted) and not verdict.duplicates  # exactly once, normally
    assert {d.kind for d in mine} == {"created", "updated", "deleted"}
    assert unpublished(postgres, acknowledged) == 0
    wait_until(lambda: metric(pods[0], "session_state_outbox_pending") == 0, 10, "pending 0")
    assert all(metric(pod, "session_state_broker_connected") == 1 for pod in pods)
    published = sum(metric(pod, "session_state_outbox_published") for pod in pods)
    assert published >= len(wanted)
    assert "connected to RabbitMQ amqp://harmonyflow@127.0.6.30" in pods[0].output()
    check_no_secret(*pods)


@needs_servers
def test_a_broker_outage_fails_no_write_and_the_outbox_drains_afterwards(
    start_service: StartService, postgres: Postgres, rabbit: RabbitNode
) -> None:
    with EventCollector([rabbit.url]) as collector:
        service = start_relaying(start_service, rabbit)
        before = write_some(service, 2)
        rabbit.stop()
        try:
            wait_until(
                lambda: metric(service, "session_state_broker_connected") == 0, 30, "disconnected"
            )
            during = write_some(service, 5)  # every write answered 2xx: asserted inside
            wait_until(
                lambda: metric(service, "session_state_outbox_pending") >= len(during),
                15,
                "the pending gauge to count the waiting events",
            )
            assert unpublished(postgres, during) == len(during)
        finally:
            rabbit.start()
        acknowledged = before + during
        wanted = set(acknowledged)
        collector.wait_for(lambda seen: wanted <= {(d.session_id, d.version) for d in seen}, 90)
        deliveries = collector.deliveries()
    verdict = event_verdict(acknowledged, deliveries)
    assert verdict.failures() == [], verdict.summary()  # duplicates allowed, deduped by id
    wait_until(lambda: unpublished(postgres, acknowledged) == 0, 15, "the outbox to drain")
    assert metric(service, "session_state_broker_connected") == 1
    assert metric(service, "session_state_broker_errors") >= 1
    log = service.output()
    assert log.count("lost RabbitMQ amqp://harmonyflow@127.0.6.30") == 1, log
    assert log.count("no RabbitMQ node reachable") <= 2, log  # once, not once per retry
    assert "aiormq" not in log, log
    check_no_secret(service)


@needs_servers
def test_the_relay_fails_over_to_the_next_node_when_its_node_dies(
    start_service: StartService, postgres: Postgres, rabbit: RabbitNode
) -> None:
    """Two independent nodes (not a cluster), a collector on each: the events written
    after the first node died arrive through the second."""
    second = RabbitNode(host=SECOND_HOST)
    try:
        second.start()
        with EventCollector([rabbit.url]) as on_first, EventCollector([second.url]) as on_second:
            service = start_service(
                AMQP_URLS=f"{rabbit.service_url},{second.service_url}",
                SECRET_AMQP_PASSWORD=AMQP_PASSWORD,
            )
            service.wait_ready()
            wait_until(lambda: "connected to RabbitMQ" in service.output(), 30, "the relay up")
            before = write_some(service, 2)
            wanted = set(before)
            on_first.wait_for(lambda seen: wanted <= {(d.session_id, d.version) for d in seen}, 30)
            rabbit.stop()
            try:
                after = write_some(service, 2)
                wanted = set(after)
                on_second.wait_for(
                    lambda seen: wanted <= {(d.session_id, d.version) for d in seen}, 60
                )
            finally:
                rabbit.start()
            deliveries = on_first.deliveries() + on_second.deliveries()
    finally:
        second.remove()
    verdict = event_verdict(before + after, deliveries)
    assert verdict.failures() == [], verdict.summary()
    assert f"connected to RabbitMQ amqp://harmonyflow@{SECOND_HOST}" in service.output()
    check_no_secret(service)


@needs_servers
def test_drops_events_fails_the_verdict_naming_the_missing_events(
    start_service: StartService, postgres: Postgres, rabbit: RabbitNode
) -> None:
    with EventCollector([rabbit.url]) as collector:
        service = start_relaying(start_service, rabbit, "--fault", "drops-events")
        acknowledged = write_some(service, 3)
        wait_until(lambda: unpublished(postgres, acknowledged) == 0, 30, "rows marked published")
        assert service.terminate() == 0  # it would drop the healthy pod's events too
        probe = start_relaying(start_service, rabbit)  # a healthy pod: its events do arrive
        marker = write_some(probe, 1)
        wanted = set(marker)
        collector.wait_for(lambda seen: wanted <= {(d.session_id, d.version) for d in seen}, 60)
        deliveries = collector.deliveries()
    verdict = event_verdict(acknowledged, deliveries)
    assert not verdict.ok
    [line] = verdict.failures()
    assert line.startswith(f"{len(acknowledged)} of {len(acknowledged)} acknowledged writes")
    session = acknowledged[0][0]
    assert f"{session} v1" in line and f"{session} v3" in line
    assert event_verdict(marker, deliveries).ok
    check_no_secret(service, probe)


# ---- the relay survives what it cannot fix ----


class _UnreachableDb:
    """A Database whose server refuses every connection (as while PostgreSQL restarts)."""

    timeout = 0.1
    calls = 0

    async def outbox_pending(self) -> int:
        self.calls += 1
        raise ConnectionRefusedError(111, "refused")


def test_a_database_outage_never_kills_the_relay(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    dead = parse_amqp_urls(f"amqp://u@127.0.0.1:{_free_port('127.0.0.1')}/", "")
    db = _UnreachableDb()
    relay = Relay(db, BrokerLink(dead, metrics), metrics, HEALTHY, lambda: True)

    async def run_a_while() -> bool:
        task = asyncio.create_task(relay.run_forever())
        await asyncio.sleep(1.5)
        alive = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return alive

    with caplog.at_level(logging.INFO, logger="session_state.relay"):
        assert asyncio.run(run_a_while())
    assert db.calls >= 3  # retried, with a bounded backoff
    assert metrics.db_errors.labels("outbox")._value.get() == db.calls
    assert [r.getMessage() for r in caplog.records].count(
        "outbox relay: PostgreSQL unavailable (ConnectionRefusedError); retrying"
    ) == 1


@dataclass
class _RecordingLink:
    """Stands in for BrokerLink: records publishes, fails the `fail_at`-th, can be slow."""

    fail_at: int = 0
    delay: float = 0.0
    published: list[str] = field(default_factory=list)

    async def exchange(self) -> object:
        return object()

    async def publish(self, exchange: object, row: OutboxRow) -> None:
        await asyncio.sleep(self.delay)
        if self.fail_at and len(self.published) + 1 == self.fail_at:
            raise ConnectionResetError(104, "reset")
        self.published.append(row.event_id)


async def _outbox_batches(postgres: Postgres) -> tuple[list[str], list[str], list[str], int]:
    db = Database(parse_db_url(postgres.url, DB_PASSWORD), 5.0, 4, outbox=True)
    await db.open()
    try:
        await db.migrate()
        async with db.pool.acquire() as conn:  # earlier tests' rows are not this test's
            await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        for n in range(6):
            await db.create(CreateRequest("relay-unit", {"n": n}))
        failing = _RecordingLink(fail_at=3)
        relay = Relay(db, failing, Metrics(), HEALTHY, lambda: True, batch=10)
        with pytest.raises(BrokerFailed, match="ConnectionResetError"):
            await relay.relay_once()
        pending_after_failure = await db.outbox_pending()
        first, second = _RecordingLink(delay=0.05), _RecordingLink(delay=0.05)
        relays = [
            Relay(db, link, Metrics(), HEALTHY, lambda: True, batch=2) for link in (first, second)
        ]
        while await db.outbox_pending():
            await asyncio.gather(*(r.relay_once() for r in relays))
        assert await db.prune_outbox(3600) == 0  # all published just now: kept
        assert await db.prune_outbox(0) >= 6  # old enough: deleted
        return failing.published, first.published, second.published, pending_after_failure
    finally:
        await db.close()


@needs_servers
def test_confirmed_rows_are_marked_and_concurrent_relays_share_the_rows(
    postgres: Postgres,
) -> None:
    failed, first, second, pending = asyncio.run(_outbox_batches(postgres))
    assert len(failed) == 2 and pending == 4  # the 2 confirmed ones committed, 4 wait
    assert not set(failed) & set(first + second)  # never published again
    assert sorted(first + second) == sorted(set(first + second))  # SKIP LOCKED: no row twice
    assert len(first + second) == 4 and first and second  # both relays took a share


@pytest.mark.parametrize(
    "module", [relay_module, db_module, config_module], ids=lambda m: m.__name__
)
def test_docstring_examples(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0
