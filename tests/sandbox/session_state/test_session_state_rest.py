"""REST against real PostgreSQL and Redis: CRUD, every client mistake, the cache, metrics."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.session_state.servers import (
    Postgres,
    RedisServer,
    Service,
    StartService,
    needs_servers,
    postgres,
    redis_server,
    start_service,
    wait_until,
)

pytestmark = needs_servers
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest
API = "/api/v1/sessions"


@pytest.fixture
def service(start_service: StartService) -> Iterator[Service]:
    started = start_service()
    started.wait_ready()
    yield started


def create(
    service: Service, owner: str = "alice", state: dict[str, object] | None = None
) -> dict[str, Any]:
    answer = service.request("POST", API, {"owner": owner, "state": state or {"n": 0}})
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    return body


def test_crud_with_etags(service: Service, postgres: Postgres) -> None:
    created = service.request("POST", API, {"owner": "alice", "state": {"a": 1, "b": {"c": 2}}})
    assert created.status == 201
    body = created.body
    assert set(body) == {"id", "owner", "version", "state", "seq"}
    assert (body["owner"], body["version"], body["seq"]) == ("alice", 1, 1)
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"] == f"{API}/{body['id']}"
    path = f"{API}/{body['id']}"

    got = service.request("GET", path)
    assert (got.status, got.body, got.headers["ETag"]) == (200, body, '"1"')

    replaced = service.request("PUT", path, {"state": {"z": True}}, headers={"If-Match": '"1"'})
    assert (replaced.status, replaced.body["version"], replaced.body["state"]) == (
        200,
        2,
        {"z": True},
    )
    assert replaced.headers["ETag"] == '"2"'

    patched = service.request(
        "PATCH",
        path,
        {"z": None, "list": [1, 2]},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert (patched.status, patched.body["state"], patched.body["version"]) == (
        200,
        {"list": [1, 2]},
        3,
    )
    assert service.request("GET", path).body["state"] == {"list": [1, 2]}

    deleted = service.request("DELETE", path, headers={"If-Match": '"3"'})
    assert (deleted.status, deleted.body) == (204, None)
    assert service.request("GET", path).status == 404

    events = postgres.query(
        "SELECT seq, version, kind FROM session_events WHERE session_id = $1 ORDER BY seq",
        uuid.UUID(body["id"]),
    )
    assert [(e["seq"], e["version"], e["kind"]) for e in events] == [
        (1, 1, "created"),
        (2, 2, "updated"),
        (3, 3, "updated"),
        (4, 4, "deleted"),
    ]


def test_explicit_ids_conflict_and_recreate(service: Service) -> None:
    session_id = str(uuid.uuid4())
    first = service.request("POST", API, {"id": session_id, "owner": "o", "state": {}})
    assert first.status == 201 and first.body["id"] == session_id
    again = service.request("POST", API, {"id": session_id, "owner": "o", "state": {}})
    assert again.status == 409 and again.body["error"]["code"] == "conflict"
    assert service.request("DELETE", f"{API}/{session_id}").status == 204
    recreated = service.request("POST", API, {"id": session_id, "owner": "o", "state": {}})
    assert (recreated.status, recreated.body["version"], recreated.body["seq"]) == (201, 1, 3)


def test_list_by_owner_pages(service: Service) -> None:
    owner = f"lister-{uuid.uuid4()}"
    ids = sorted(create(service, owner)["id"] for _ in range(5))
    create(service, "someone-else")
    first = service.request("GET", f"{API}?owner={owner}&limit=3")
    assert first.status == 200
    assert [s["id"] for s in first.body["items"]] == ids[:3]
    assert first.body["next"] == ids[2]
    rest = service.request("GET", f"{API}?owner={owner}&limit=3&after={first.body['next']}")
    assert [s["id"] for s in rest.body["items"]] == ids[3:] and rest.body["next"] is None


def test_if_match_mismatch_is_412_everywhere(service: Service) -> None:
    path = f"{API}/{create(service)['id']}"
    stale = {"If-Match": '"7"'}
    for method, body in (("PUT", {"state": {}}), ("PATCH", {"a": 1}), ("DELETE", None)):
        answer = service.request(method, path, body, headers=stale)
        assert (answer.status, answer.body["error"]["code"]) == (412, "precondition_failed"), method
    assert service.request("GET", path).body["version"] == 1
    assert service.request("PATCH", path, {"a": 1}, headers={"If-Match": "*"}).status == 200


@pytest.mark.parametrize(
    ("method", "path", "raw", "headers", "status", "code"),
    [
        pytest.param("POST", API, b"{nope", {}, 400, "invalid_json", id="malformed-json"),
        pytest.param("POST", API, b'{"a": NaN}', {}, 400, "invalid_json", id="nan"),
        pytest.param("POST", API, b"\xff\xfe", {}, 400, "invalid_json", id="not-utf8"),
        pytest.param("POST", API, b"[" * 100_000, {}, 413, "payload_too_large", id="deep-big"),
        pytest.param("POST", API, b"[" * 5000, {}, 400, "invalid_json", id="deep"),
        pytest.param("GET", f"{API}/not-a-uuid", None, {}, 400, "invalid_id", id="bad-id"),
        pytest.param("GET", f"{API}/{uuid.uuid4()}", None, {}, 404, "not_found", id="missing"),
        pytest.param("DELETE", f"{API}/{uuid.uuid4()}", None, {}, 404, "not_found", id="del-404"),
        pytest.param("GET", "/nowhere", None, {}, 404, "not_found", id="no-route"),
        pytest.param("DELETE", API, None, {}, 405, "method_not_allowed", id="405"),
        pytest.param("POST", API, b"x" * 70_000, {}, 413, "payload_too_large", id="too-big"),
        pytest.param(
            "POST",
            API,
            b"{}",
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
            id="415",
        ),
        pytest.param(
            "POST", API, b"{}", {"Content-Type": ""}, 415, "unsupported_media_type", id="none"
        ),
        pytest.param("POST", API, b'{"state": {}}', {}, 422, "unprocessable", id="no-owner"),
        pytest.param(
            "POST", API, b'{"owner": 1, "state": {}}', {}, 422, "unprocessable", id="owner-int"
        ),
        pytest.param(
            "POST", API, b'{"owner": "a", "state": 3}', {}, 422, "unprocessable", id="state-int"
        ),
        pytest.param(
            "POST",
            API,
            b'{"owner": "a", "state": {"k": "\\u0000"}}',
            {},
            422,
            "unprocessable",
            id="nul-char",
        ),
        pytest.param("GET", f"{API}?limit=3", None, {}, 400, "bad_request", id="list-no-owner"),
        pytest.param("GET", f"{API}?owner=a&limit=x", None, {}, 400, "bad_request", id="limit"),
    ],
)
def test_client_mistakes_get_json_errors(
    service: Service,
    method: str,
    path: str,
    raw: bytes | None,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    all_headers = {"Content-Type": "application/json", **headers} if raw is not None else headers
    answer = service.request(method, path, raw=raw, headers=all_headers)
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    assert isinstance(answer.body["error"]["message"], str)
    if status == 405:
        assert "GET" in answer.headers.get("Allow", "")
    assert service.status("/health/live") == 200


def test_put_and_patch_mistakes(service: Service) -> None:
    path = f"{API}/{create(service, 'owner-1')['id']}"
    cases = [
        ("PUT", {"state": []}, {}, 422),
        ("PUT", {"state": {}, "owner": "owner-2"}, {}, 422),
        ("PATCH", ["not", "an", "object"], {}, 422),
        ("PATCH", {"a": 1}, {"If-Match": "3"}, 400),
        ("PUT", {"state": {}}, {"Content-Type": "application/xml"}, 415),
    ]
    for method, body, headers, status in cases:
        answer = service.request(method, path, body, headers=headers)
        assert answer.status == status, (method, body, headers, answer.body)
    assert service.request("GET", path).body["version"] == 1


def test_chunked_oversized_body_is_413(service: Service) -> None:
    conn = http.client.HTTPConnection(service.host, 8080, timeout=10)
    try:
        conn.putrequest("POST", API)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b" " * 8192
        for _ in range(10):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        answer = conn.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read())["error"]["code"] == "payload_too_large"
    finally:
        conn.close()
    assert service.status("/health/ready") == 200


def test_reads_work_without_redis_and_writes_never_need_it(
    service: Service, redis_server: RedisServer
) -> None:
    session = create(service, state={"v": 1})
    path = f"{API}/{session['id']}"
    assert service.request("GET", path).status == 200  # now cached
    redis_server.stop()
    try:
        wait_until(
            lambda: service.status("/health/ready") == 503, 10, "readiness to see redis gone"
        )
        ready = service.request("GET", "/health/ready")
        assert "redis" in ready.body["error"]["message"]
        assert "postgresql" not in ready.body["error"]["message"]
        changed = service.request("PATCH", path, {"v": 2})
        assert (changed.status, changed.body["version"]) == (200, 2)
        assert service.request("GET", path).body["state"] == {"v": 2}
        other = create(service, state={"w": 1})
        assert service.request("GET", f"{API}/{other['id']}").status == 200
    finally:
        redis_server.start()
    service.wait_ready(30)
    # the cache missed the write while Redis was down: it must not serve the old state
    wait_until(lambda: service.request("GET", path).body["version"] == 2, 10, "fresh read")


def test_cache_never_serves_an_older_version_across_replicas(start_service: StartService) -> None:
    a, b = start_service(), start_service()
    a.wait_ready()
    b.wait_ready()
    session = create(a)
    path = f"{API}/{session['id']}"
    for version in range(2, 12):
        writer, reader = (a, b) if version % 2 else (b, a)
        assert writer.request("PATCH", path, {"n": version}).body["version"] == version
        got = reader.request("GET", path)
        assert (got.body["version"], got.body["state"]["n"]) == (version, version)


def test_metrics(service: Service) -> None:
    create(service)
    service.request("GET", f"{API}/{uuid.uuid4()}")
    answer = service.request("GET", "/metrics")
    assert answer.status == 200
    text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
    assert (
        'session_state_http_requests_total{method="POST",route="/api/v1/sessions",status="201"}'
        in text
    )
    assert 'route="/api/v1/sessions/{id}",status="404"' in text
    assert "session_state_http_request_duration_seconds_bucket" in text
    assert "session_state_websocket_connections" in text
    assert "session_state_events_published_total" in text
    assert "session_state_db_errors_total" in text or "session_state_db_errors" in text
    assert "session_state_redis_errors" in text
