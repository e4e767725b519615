"""The session-state service's pure pieces, table by table, and its image entries."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import deque
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import RedisClusterException

from sandbox.images.registry import DEFAULT_REGISTRY, REPO_ROOT, SESSION_STATE, SESSION_STATE_MODULE
from sandbox.images.session_state import faults
from sandbox.images.session_state.cache import decode_entry, encode_entry
from sandbox.images.session_state.config import ConfigError, parse_settings, redact
from sandbox.images.session_state.errors import (
    BadRequest,
    NotFound,
    ServiceError,
    Unavailable,
    error_body,
    to_service_error,
)
from sandbox.images.session_state.faults import FAULTS, HEALTHY, readiness_verdict
from sandbox.images.session_state.health import readiness_answer
from sandbox.images.session_state.hub import ReplayGate, replay_slots
from sandbox.images.session_state.middleware import error_middleware
from sandbox.images.session_state.model import (
    Event,
    Fetch,
    Idle,
    IfMatch,
    Send,
    Session,
    event_from_message,
    merge_patch,
    next_step,
    parse_create,
    parse_if_match,
    parse_list_query,
    parse_patch,
    parse_replace,
    parse_session_id,
    precondition_holds,
    should_deliver,
)
from sandbox.images.session_state.websocket import (
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    flood_exceeded,
    parse_client_message,
)
from sandbox.images.session_state.writes import patch_change, replace_change

SID = "6f1c0b5e-0d2c-4d7e-9f43-bd1e4f5a8c11"


def make_env(**overrides: str) -> dict[str, str]:
    env = {
        "DB_URL": "postgresql://harmonyflow@127.0.3.10:5432/harmonyflow",
        "REDIS_URL": "redis://127.0.3.20:6379",
        "SECRET_DB_PASSWORD": "pw-secret-1",
        "SECRET_SESSION_SIGNING_KEY": "signing-secret-2",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "<unset>"}


# ---- config ----


def test_config_from_the_sandbox_overlay_env() -> None:
    settings = parse_settings(make_env(POD_IP="127.0.2.7", LOG_LEVEL="INFO"), [])
    assert (settings.db.host, settings.db.port, settings.db.user) == (
        "127.0.3.10",
        5432,
        "harmonyflow",
    )
    assert settings.db.password == "pw-secret-1"
    assert (settings.redis.host, settings.redis.port) == ("127.0.3.20", 6379)
    assert (settings.bind_host, settings.http_port, settings.ws_port) == ("127.0.2.7", 8080, 8443)
    assert settings.fault is HEALTHY
    assert settings.timings.ws_heartbeat == 15 and settings.timings.shutdown_timeout == 20
    assert {"pw-secret-1", "signing-secret-2"} <= settings.secrets
    assert "pw-secret-1" not in repr(settings)


@pytest.mark.parametrize(
    ("overrides", "argv", "message"),
    [
        pytest.param({"DB_URL": "<unset>"}, [], "DB_URL is required", id="no-db-url"),
        pytest.param({"REDIS_URL": ""}, [], "REDIS_URL is required", id="empty-redis-url"),
        pytest.param({"DB_URL": "mysql://a@b/c"}, [], "scheme must be postgresql", id="db-scheme"),
        pytest.param({"DB_URL": "postgresql://h:5432/db"}, [], "expected postgresql", id="no-user"),
        pytest.param({"DB_URL": "postgresql://u@h:99999/db"}, [], "not a URL", id="bad-port"),
        pytest.param({"DB_URL": "postgresql://u@h/db?x=1"}, [], "query", id="db-query"),
        pytest.param({"REDIS_URL": "http://h:1"}, [], "expected redis", id="redis-scheme"),
        pytest.param({"POD_IP": "pod-1"}, [], "POD_IP", id="pod-ip"),
        pytest.param({"LOG_LEVEL": "loud"}, [], "LOG_LEVEL", id="log-level"),
        pytest.param({"WS_HEARTBEAT_SECONDS": "soon"}, [], "not a number", id="heartbeat"),
        pytest.param({"WS_HEARTBEAT_SECONDS": "0"}, [], "must be > 0", id="zero-heartbeat"),
        pytest.param({"SHUTDOWN_TIMEOUT_SECONDS": "-1"}, [], ">= 0", id="negative"),
        pytest.param({"STARTUP_SECONDS": "nan"}, [], ">= 0", id="nan"),
        pytest.param({}, ["--fault", "gremlins"], "unknown fault", id="unknown-fault"),
        pytest.param({"SESSION_STATE_FAULT": "x"}, [], "unknown fault", id="fault-env"),
        pytest.param({}, ["--verbose"], "unrecognized arguments", id="unknown-arg"),
        pytest.param({"DB_POOL_SIZE": "0"}, [], "between 1 and 100", id="pool-size"),
        pytest.param({"DB_POOL_SIZE": "many"}, [], "not an integer", id="pool-size-text"),
    ],
)
def test_config_errors_are_one_line(
    overrides: dict[str, str], argv: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_settings(make_env(**overrides), argv)
    assert "\n" not in str(caught.value) and "pw-secret-1" not in str(caught.value)


def test_fault_from_argv_wins_over_env() -> None:
    settings = parse_settings(make_env(SESSION_STATE_FAULT="burns-cpu"), ["--fault", "never-ready"])
    assert settings.fault is FAULTS["never-ready"]
    assert parse_settings(make_env(SESSION_STATE_FAULT="crash"), []).fault is FAULTS["crash"]


def test_password_in_urls_is_a_secret() -> None:
    settings = parse_settings(
        make_env(
            DB_URL="postgresql://u:url-pass@h/db",
            SECRET_DB_PASSWORD="",
            REDIS_URL="redis://:redis-pass@h:6379",
        ),
        [],
    )
    assert settings.db.password == "url-pass"
    assert settings.redact("x url-pass y redis-pass") == "x *** y ***"
    assert (
        "url-pass" not in settings.db.describe() and "redis-pass" not in settings.redis.describe()
    )


def test_redact_longest_first() -> None:
    assert redact("abc abcdef", frozenset({"abc", "abcdef"})) == "*** ***"


def test_main_exits_2_with_one_line_and_no_secret() -> None:
    env = {**make_env(DB_URL="postgresql://pw-secret-1@/x"), "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.images.session_state"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and completed.stderr.startswith("session-state: ")
    assert "pw-secret-1" not in completed.stderr + completed.stdout


# ---- errors ----


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(BadRequest("invalid_json", "x"), 400, "invalid_json", id="service-error"),
        pytest.param(NotFound("x"), 404, "not_found", id="not-found"),
        pytest.param(web.HTTPNotFound(), 404, "not_found", id="no-route"),
        pytest.param(web.HTTPMethodNotAllowed("PUT", ["GET"]), 405, "method_not_allowed", id="405"),
        pytest.param(
            web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2),
            413,
            "payload_too_large",
            id="413",
        ),
        pytest.param(ConnectionRefusedError(), 503, "unavailable", id="db-refused"),
        pytest.param(TimeoutError(), 503, "unavailable", id="timeout"),
        pytest.param(TimeoutError(), 503, "unavailable", id="asyncio-timeout"),
        pytest.param(RedisClusterException("no node"), 503, "unavailable", id="redis-cluster"),
        pytest.param(KeyError("boom"), 500, "internal", id="bug"),
    ],
)
def test_error_mapping(error: BaseException, status: int, code: str) -> None:
    mapped = to_service_error(error)
    assert (mapped.status, mapped.code) == (status, code)
    if status == 503:
        assert mapped.headers["Retry-After"].isdigit()


def test_error_body_shape() -> None:
    assert error_body(Unavailable("db down")) == {
        "error": {"code": "unavailable", "message": "db down"}
    }


def test_asyncpg_connection_errors_are_503() -> None:
    for error in (
        asyncpg.exceptions.CannotConnectNowError("starting"),
        asyncpg.exceptions.AdminShutdownError("terminating"),
        asyncpg.exceptions.ReadOnlySQLTransactionError("standby"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
    ):
        assert to_service_error(error).status == 503, error


# ---- requests ----


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param([], "JSON object", id="not-object"),
        pytest.param({"state": {}}, "owner", id="no-owner"),
        pytest.param({"owner": 5, "state": {}}, "owner", id="owner-not-string"),
        pytest.param({"owner": "", "state": {}}, "owner", id="owner-empty"),
        pytest.param({"owner": "a" * 300, "state": {}}, "at most", id="owner-long"),
        pytest.param({"owner": "a"}, "state", id="no-state"),
        pytest.param({"owner": "a", "state": [1]}, "state", id="state-list"),
        pytest.param({"owner": "a", "state": {}, "id": "nope"}, "UUID", id="bad-explicit-id"),
        pytest.param({"owner": "a", "state": {}, "id": 7}, "string", id="id-not-string"),
    ],
)
def test_create_schema_errors_are_422(body: Any, message: str) -> None:
    with pytest.raises(ServiceError, match=message) as caught:
        parse_create(body)
    assert caught.value.status == 422


def test_create_request_normalizes_an_explicit_id() -> None:
    request = parse_create({"owner": "a", "state": {"k": 1}, "id": SID.upper()})
    assert (request.id, request.owner, request.state) == (SID, "a", {"k": 1})
    assert parse_create({"owner": "a", "state": {}}).id is None


def test_replace_and_patch_schema() -> None:
    assert parse_replace({"state": {"a": 1}}).owner is None
    with pytest.raises(ServiceError, match="state"):
        parse_replace({"state": "x"})
    with pytest.raises(ServiceError, match="object") as caught:
        parse_patch(["x"])
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "text",
    [pytest.param("42", id="int"), pytest.param("", id="empty"), pytest.param("g" * 36, id="g")],
)
def test_bad_session_ids_are_400(text: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_session_id(text)
    assert (caught.value.status, caught.value.code) == (400, "invalid_id")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"owner": "a"}, ("a", 50, None), id="defaults"),
        pytest.param({"owner": "a", "limit": "2", "after": SID}, ("a", 2, SID), id="page"),
        pytest.param({}, "owner", id="no-owner"),
        pytest.param({"owner": "a", "limit": "x"}, "integer", id="limit-text"),
        pytest.param({"owner": "a", "limit": "0"}, "between", id="limit-zero"),
        pytest.param({"owner": "a", "limit": "501"}, "between", id="limit-big"),
        pytest.param({"owner": "a", "after": "x"}, "session id", id="bad-after"),
    ],
)
def test_list_query(query: dict[str, str], expected: Any) -> None:
    if isinstance(expected, tuple):
        parsed = parse_list_query(query)
        assert (parsed.owner, parsed.limit, parsed.after) == expected
        return
    with pytest.raises(ServiceError, match=expected) as caught:
        parse_list_query(query)
    assert caught.value.status == 400


# ---- merge patch (RFC 7396 appendix A) ----


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace"),
        pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add"),
        pytest.param({"a": "b"}, {"a": None}, {}, id="remove"),
        pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="remove-one"),
        pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="array-to-string"),
        pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="string-to-array"),
        pytest.param(
            {"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="nested"
        ),
        pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="arrays-replace"),
        pytest.param(["a", "b"], ["c", "d"], ["c", "d"], id="array-root"),
        pytest.param({"a": "b"}, ["c"], ["c"], id="non-object-patch"),
        pytest.param({"a": "foo"}, None, None, id="null-patch"),
        pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="keeps-null-in-target"),
        pytest.param([1, 2], {"a": "b", "c": None}, {"a": "b"}, id="array-target"),
        pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="deep-create"),
    ],
)
def test_merge_patch(target: Any, patch: Any, result: Any) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == result
    assert repr(target) == before, "merge_patch changed its input"


def test_patch_change_keeps_state_an_object() -> None:
    current = Session(SID, "a", 1, {"x": 1}, 1)
    assert patch_change({"x": None, "y": 2})(current) == ("updated", {"y": 2})
    with pytest.raises(ServiceError, match="owner cannot change"):
        replace_change(parse_replace({"state": {}, "owner": "b"}))(current)
    assert replace_change(parse_replace({"state": {}, "owner": "a"}))(current) == ("updated", {})


# ---- ETag / If-Match ----


@pytest.mark.parametrize(
    ("header", "version", "holds"),
    [
        pytest.param(None, 3, True, id="absent"),
        pytest.param('"3"', 3, True, id="match"),
        pytest.param('"2"', 3, False, id="stale"),
        pytest.param('"1", "3"', 3, True, id="list"),
        pytest.param("*", 3, True, id="star"),
        pytest.param('W/"3"', 3, False, id="weak-never-matches"),
        pytest.param('"abc"', 3, False, id="foreign-tag"),
        pytest.param('"3"', None, False, id="absent-session"),
    ],
)
def test_if_match(header: str | None, version: int | None, holds: bool) -> None:
    assert precondition_holds(parse_if_match(header), version) is holds


@pytest.mark.parametrize(
    "header", [pytest.param("3", id="unquoted"), pytest.param('"3', id="open")]
)
def test_malformed_if_match_is_400(header: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_if_match(header)
    assert caught.value.status == 400


def test_if_match_star() -> None:
    assert parse_if_match(" * ") == IfMatch(any=True)


# ---- seq ordering ----


@pytest.mark.parametrize(
    ("last_sent", "buffered", "head", "step"),
    [
        pytest.param(0, set(), None, Fetch(0), id="replay-first"),
        pytest.param(4, {5, 6}, 6, Send(5), id="next-in-buffer"),
        pytest.param(4, {6}, 6, Fetch(4), id="gap-from-db"),
        pytest.param(4, {7}, 4, Fetch(4), id="live-skips-ahead"),
        pytest.param(6, set(), 6, Idle(), id="caught-up"),
        pytest.param(6, set(), 8, Fetch(6), id="resync-says-more"),
        pytest.param(5, {5}, 5, Idle(), id="duplicate-in-buffer"),
    ],
)
def test_next_step(last_sent: int, buffered: set[int], head: int | None, step: object) -> None:
    assert next_step(last_sent, buffered, head) == step


@pytest.mark.parametrize(
    ("last_sent", "seq", "deliver"),
    [(4, 5, True), (4, 4, False), (4, 3, False), (4, 6, False)],
    ids=["next", "duplicate", "old", "gap"],
)
def test_should_deliver(last_sent: int, seq: int, deliver: bool) -> None:
    assert should_deliver(last_sent, seq) is deliver


def test_event_message_round_trip() -> None:
    event = Event(SID, 3, 2, "updated", {"a": 1}, "2026-01-01T00:00:00+00:00")
    assert event_from_message(event.to_message()) == event
    for broken in (
        {"type": "x"},
        {**event.to_message(), "seq": "3"},
        {**event.to_message(), "kind": "x"},
    ):
        with pytest.raises(ValueError):
            event_from_message(broken)


# ---- websocket frames ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"type":"ping"}', Ping(), id="ping"),
        pytest.param(f'{{"type":"subscribe","session":"{SID}"}}', Subscribe(SID, 0), id="sub"),
        pytest.param(
            f'{{"type":"subscribe","session":"{SID}","since":4}}', Subscribe(SID, 4), id="since"
        ),
        pytest.param(f'{{"type":"unsubscribe","session":"{SID}"}}', Unsubscribe(SID), id="unsub"),
        pytest.param("nope", "invalid_json", id="not-json"),
        pytest.param("[1]", "invalid_message", id="not-object"),
        pytest.param('{"type":"dance"}', "unknown_type", id="unknown-type"),
        pytest.param('{"type":"subscribe","session":"x"}', "invalid_id", id="bad-session"),
        pytest.param(
            f'{{"type":"subscribe","session":"{SID}","since":-1}}', "invalid_since", id="neg"
        ),
        pytest.param(
            f'{{"type":"subscribe","session":"{SID}","since":true}}', "invalid_since", id="bool"
        ),
    ],
)
def test_parse_client_message(text: str, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(ProtocolError) as caught:
            parse_client_message(text)
        assert caught.value.code == expected
    else:
        assert parse_client_message(text) == expected


def test_flood_window() -> None:
    errors: deque[float] = deque()
    assert not any(flood_exceeded(errors, float(t) / 10, window=10, limit=20) for t in range(20))
    assert flood_exceeded(errors, 2.1, window=10, limit=20)
    errors.clear()
    assert not any(flood_exceeded(errors, float(t), window=10, limit=3) for t in range(0, 60, 5))


# ---- faults ----


@pytest.mark.parametrize(
    ("name", "uptime", "stopping", "verdict"),
    [
        pytest.param("", 0.0, False, "check", id="healthy"),
        pytest.param("", 0.0, True, "not-ready", id="healthy-stopping"),
        pytest.param("never-ready", 999.0, False, "not-ready", id="never-ready"),
        pytest.param("slow-start", 39.0, False, "not-ready", id="slow-start-early"),
        pytest.param("slow-start", 40.0, False, "check", id="slow-start-late"),
        pytest.param("ready-before-db", 0.0, False, "ready", id="ready-before-db"),
        pytest.param("ready-before-db", 0.0, True, "not-ready", id="ready-before-db-stopping"),
        pytest.param("burns-cpu", 0.0, False, "check", id="others-check"),
    ],
)
def test_readiness_verdict(name: str, uptime: float, stopping: bool, verdict: str) -> None:
    fault = faults.fault_named(name)
    assert readiness_verdict(fault, uptime, startup_seconds=40.0, stopping=stopping) == verdict


def test_fault_table_behaviours() -> None:
    assert faults.is_hanging(FAULTS["liveness-hang"], 20.0, 20.0)
    assert not faults.is_hanging(FAULTS["liveness-hang"], 19.9, 20.0)
    assert not faults.is_hanging(HEALTHY, 99.0, 20.0)
    assert faults.should_crash(FAULTS["crash"], 2.0, 2.0)
    flags = {
        name: (f.hangs, f.ignores_sigterm, f.write_behind, f.burns_cpu, f.crashes, f.readiness)
        for name, f in FAULTS.items()
    }
    assert flags == {
        "liveness-hang": (True, False, False, False, False, "checked"),
        "never-ready": (False, False, False, False, False, "never"),
        "slow-start": (False, False, False, False, False, "delayed"),
        "ignore-sigterm": (False, True, False, False, False, "checked"),
        "ready-before-db": (False, False, False, False, False, "unchecked"),
        "drops-writes": (False, False, True, False, False, "checked"),
        "burns-cpu": (False, False, False, True, False, "checked"),
        "crash": (False, False, False, False, True, "checked"),
        "slow-responses": (False, False, False, False, False, "checked"),
        "errors": (False, False, False, False, False, "checked"),
        "drops-events": (False, False, False, False, False, "checked"),
        "abrupt-exit": (False, False, False, False, False, "checked"),
        "no-db-reconnect": (False, False, False, False, False, "checked"),
        "ws-resume-from-head": (False, False, False, False, False, "checked"),
        "no-request-timeout": (False, False, False, False, False, "checked"),
        "no-redis-timeout": (False, False, False, False, False, "checked"),
        "readiness-ignores-redis": (False, False, False, False, False, "postgresql-only"),
        "slow-shutdown": (False, False, False, False, False, "checked"),
        "trusts-stale-cache": (False, False, False, False, False, "checked"),
        "never-rebalances": (False, False, False, False, False, "checked"),
    }
    assert [name for name, f in FAULTS.items() if f.exits_abruptly] == ["abrupt-exit"]
    one_each = {
        "no-db-reconnect": "keeps_dead_connections",
        "ws-resume-from-head": "resumes_from_head",
        "slow-shutdown": "drains_slowly",
        "trusts-stale-cache": "trusts_cache",
        "never-rebalances": "ignores_max_age",
    }
    for name, field in one_each.items():
        assert [n for n, f in FAULTS.items() if getattr(f, field)] == [name]
    unbounded = {name: f.unbounded for name, f in FAULTS.items() if f.unbounded}
    assert unbounded == {
        "no-request-timeout": ("postgresql", "redis"),
        "no-redis-timeout": ("redis",),
    }
    assert all(f.description and "\n" not in f.description for f in FAULTS.values())


def test_burn_cpu_is_bounded() -> None:
    assert faults.burn_cpu(0) >= 0 and faults.burn_cpu(-5) >= 0


def test_fault_table_is_documented_in_the_module() -> None:
    assert all(f"`{name}`" in (faults.__doc__ or "") for name in FAULTS)


def test_readiness_answer_names_the_failing_dependency() -> None:
    assert readiness_answer({"postgresql": "ok", "redis": "ok"})[0] == 200
    status, body = readiness_answer({"postgresql": "ConnectionRefusedError", "redis": "ok"})
    assert status == 503 and "postgresql" in body["error"]["message"]
    assert "redis" not in body["error"]["message"]


def test_cache_entries() -> None:
    assert decode_entry(encode_entry(12, '{"a":"|"}')) == (12, '{"a":"|"}')
    assert decode_entry(encode_entry(3, None)) == (3, None)


# ---- image registry ----


@pytest.mark.parametrize(
    ("tag", "args"),
    [
        pytest.param("1.0.0", [], id="seed"),
        pytest.param("1.0.1", [], id="patch"),
        pytest.param("1.1.0", [], id="minor"),
        pytest.param("1.2.0", [], id="rebalancing"),
        *(pytest.param(name, ["--fault", name], id=name) for name in FAULTS),
    ],
)
def test_session_state_images(tag: str, args: list[str]) -> None:
    image = DEFAULT_REGISTRY.lookup(f"{SESSION_STATE}:{tag}")
    assert image.argv({}) == [sys.executable, "-m", SESSION_STATE_MODULE, *args]
    assert dict(image.env)["SERVICE_VERSION"] == tag
    if args:
        assert image.description == FAULTS[tag].description


# ---- the error middleware, in process ----


async def _through_error_middleware(error: BaseException) -> list[tuple[int, Any]]:
    async def failing(request: web.Request) -> web.Response:
        raise error

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/fail", failing)
    app.router.add_get("/fine", fine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answers = []
        for path in ("/fail", "/fine", "/fail", "/nowhere"):
            response = await client.get(path)
            answers.append((response.status, await response.json()))
        return answers


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(KeyError("bug"), 500, "internal", id="bug"),
        pytest.param(ConnectionRefusedError(), 503, "unavailable", id="db-down"),
        pytest.param(RedisClusterException("x"), 503, "unavailable", id="redis-cluster"),
        pytest.param(
            asyncpg.exceptions.InvalidTextRepresentationError("x"), 422, "unprocessable", id="data"
        ),
    ],
)
def test_unexpected_errors_are_json_and_the_server_keeps_serving(
    error: BaseException, status: int, code: str
) -> None:
    answers = asyncio.run(_through_error_middleware(error))
    assert [a[0] for a in answers] == [status, 200, status, 404]
    assert answers[0][1]["error"]["code"] == code
    assert answers[3][1]["error"]["code"] == "not_found"


class _CountingLog:
    """An event log that records how many reads it serves at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def _read(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.01)
        self.now -= 1

    async def events_after(self, session_id: str, after: int, limit: int) -> list[Any]:
        await self._read()
        return []

    async def heads(self, session_ids: Any) -> dict[str, int]:
        await self._read()
        return {}


@pytest.mark.parametrize("pool_size", [1, 2, 10])
def test_replays_of_a_reconnect_storm_hold_at_most_half_the_pool(pool_size: int) -> None:
    """Thousands of resumed subscriptions read the log at once; the gate lets only
    `replay_slots` of them hold a connection, and every read is still served."""
    log = _CountingLog()
    gate = ReplayGate(log, replay_slots(pool_size))

    async def storm() -> int:
        reads = [gate.events_after(f"s{i}", 0, 500) for i in range(200)]
        reads += [gate.heads([f"s{i}"]) for i in range(200)]
        return len(await asyncio.gather(*reads))

    assert asyncio.run(storm()) == 400
    assert log.most == max(1, pool_size // 2)
