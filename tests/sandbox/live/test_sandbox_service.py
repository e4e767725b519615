"""The reference service behind nginx, on real PostgreSQL and Redis, as `sandbox up` runs it.

One sandbox per module, started the way users start it (`resilience sandbox up`);
everything reaches it through its kubeconfig and its ingress URL.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
import websocket
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from resilience.targets.live import terminating_pods
from resilience.traffic import read_back
from sandbox.infra.ingress_controller import sync_interval
from sandbox.kube.settings import ControlPlaneSettings
from tests.live import DEPLOYMENT, NAMESPACE, LiveSandbox, create_sessions
from tests.sandbox.cluster_harness import wait_for
from tests.sandbox.live.traffic import Follower, Writer, lost_writes, request, sequence_faults

# Endpoint change -> nginx: up to one ingress sync (ingress-nginx's --sync-rate-limit, the
# sandbox's default) plus a reload (measured ~0.15 s; 1 s of slack). A terminating pod
# serves through its drain delay, which is longer, so nothing it answers then is lost.
PROPAGATION_SECONDS = sync_interval(ControlPlaneSettings().ingress_sync_rate_limit) + 1.0


def test_rest_and_websocket_round_trip_through_the_ingress(live: LiveSandbox) -> None:
    [session] = create_sessions(live, 1)
    socket = websocket.create_connection(live.ws_url, timeout=10)
    try:
        socket.send(json.dumps({"type": "subscribe", "session": session, "since": 0}))
        status, body = request(
            live.ingress,
            "PUT",
            f"/api/v1/sessions/{session}",
            {"state": {"n": 1}},
            {"If-Match": '"1"'},
        )
        assert status == 200 and body["version"] == 2
        events: list[dict[str, Any]] = []
        while len(events) < 2:
            message = json.loads(socket.recv())
            if message.get("type") == "event":
                events.append(message)
        assert [e["seq"] for e in events] == [1, 2]
        assert events[-1]["state"] == {"n": 1}
    finally:
        socket.close()
    status, body = request(live.ingress, "GET", f"/api/v1/sessions/{session}")
    assert status == 200 and body["state"] == {"n": 1}


def kill_under_traffic(live: LiveSandbox) -> tuple[list[str], list[str], list[int]]:
    """Delete the pod most WebSockets are on while writers and followers run.

    Returns (lost-write findings, sequence findings, close codes seen).
    """
    sessions = create_sessions(live, 6)
    writer = Writer(live.ingress, sessions, max_seconds=90)
    followers = [Follower(live.ws_url, sessions[i % len(sessions)]) for i in range(12)]
    threads = [threading.Thread(target=f.run, daemon=True) for f in followers]
    threads.append(threading.Thread(target=writer.run, daemon=True))
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(f.servers for f in followers), 30, "every follower subscribed")
        time.sleep(2)
        busiest = Counter(f.servers[-1] for f in followers).most_common(1)[0][0]
        victim = next(p for p in live.pods() if p.status.pod_ip == busiest)
        client.CoreV1Api(live.api).delete_namespaced_pod(victim.metadata.name, NAMESPACE)
        live.kubectl("rollout", "status", f"deploy/{DEPLOYMENT}", "-n", NAMESPACE, "--timeout=120s")
        wait_for(
            lambda: all(p.metadata.name != victim.metadata.name for p in live.pods()),
            60,
            "the killed pod to be gone",
        )
        time.sleep(3)
    finally:
        writer.stop.set()
        threads[-1].join(30)
    final = read_back(live.ingress, sessions)
    time.sleep(2)  # let the last pushes arrive
    for follower in followers:
        follower.stop.set()
    for thread in threads[:-1]:
        thread.join(10)
    lost = lost_writes(writer.acked, final)
    sequences = []
    for follower in followers:
        status, body = request(live.ingress, "GET", f"/api/v1/sessions/{follower.session}")
        if status == 404:  # a lost session is a lost write above; it has no sequence left
            continue
        sequences += [
            f"{follower.session}: {finding}"
            for finding in sequence_faults(follower.seqs, int(body["seq"]))
        ]
    assert len(writer.acked) > 50, f"too little traffic: {len(writer.acked)} writes"
    return lost, sequences, [code for f in followers for code in f.close_codes]


def test_pod_kill_under_traffic_loses_nothing_and_websockets_resume(live: LiveSandbox) -> None:
    lost, sequences, close_codes = kill_under_traffic(live)
    assert not lost, lost
    assert not sequences, sequences
    assert 1001 in close_codes, f"no WebSocket saw the pod go away with 1001: {close_codes}"


def test_the_drops_writes_variant_is_caught_by_the_same_test(live: LiveSandbox) -> None:
    live.set_image("drops-writes")
    try:
        lost, _, _ = kill_under_traffic(live)
    finally:
        live.set_image("1.0.0")
    assert lost, "the drops-writes image lost no acknowledged write: the check cannot fail"


def test_rollout_keeps_the_ingress_endpoint_set_right(live: LiveSandbox) -> None:
    """No request reaches a pod before it is ready or after it stops being ready/serving."""
    core = client.CoreV1Api(live.api)
    served: dict[str, list[tuple[float, bool]]] = {}  # pod IP -> (time, eligible) transitions
    stop = threading.Event()

    def follow() -> None:
        with contextlib.suppress(ProtocolError, ApiException):
            observe()

    def observe() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_pod,
            NAMESPACE,
            label_selector=f"app={DEPLOYMENT}",
            _request_timeout=240,
        ):
            pod = event["object"]
            ip = pod.status.pod_ip
            if ip:
                ready = any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                )
                eligible = (
                    ready and pod.metadata.deletion_timestamp is None and event["type"] != "DELETED"
                )
                history = served.setdefault(ip, [])
                if not history or history[-1][1] != eligible:
                    history.append((time.time(), eligible))
            if stop.is_set():
                stream.stop()

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    wait_for(lambda: len(served) >= 3, 30, "the watch to see the pods")
    [session] = create_sessions(live, 1)
    began = time.time()
    writer = Writer(live.ingress, [session], max_seconds=120)
    writing = threading.Thread(target=writer.run, daemon=True)
    writing.start()
    live.kubectl("rollout", "restart", f"deploy/{DEPLOYMENT}", "-n", NAMESPACE)
    live.kubectl("rollout", "status", f"deploy/{DEPLOYMENT}", "-n", NAMESPACE, "--timeout=180s")
    # `rollout status` returns while the old pods drain; the next test must not meet one
    # the ingress still routes to (its readiness answers 503 until nginx drops it)
    wait_for(lambda: not terminating_pods(live.pods()), 60, "the old pods to be gone")
    time.sleep(PROPAGATION_SECONDS)
    writer.stop.set()
    writing.join(30)
    stop.set()
    request(live.ingress, "GET", "/health/ready")
    violations = []
    log = live.state / "nginx" / "logs" / "access.log"
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        started = float(entry["msec"]) - float(entry["request_time"])
        if started < began or not entry["upstream"] or entry["upstream"] == "-":
            continue
        for upstream in entry["upstream"].split(", "):
            ip = upstream.split(":")[0]
            if not eligible_around(served.get(ip, []), started, PROPAGATION_SECONDS, 0.5):
                violations.append(
                    f"{entry['method']} {entry['uri']} at {started:.3f} went to "
                    f"{ip}, not ready or terminating (history {served.get(ip)})"
                )
    assert writer.acked, f"no write went through during the rollout: {writer.failure_statuses}"
    assert not violations, violations[:5]


def eligible_around(
    history: list[tuple[float, bool]], moment: float, before: float, after: float
) -> bool:
    """Was the pod ready and not terminating at some instant of [moment - before, moment + after]?

    `before` is the ingress's propagation delay; `after` absorbs the watch's own lag.

    >>> eligible_around([(0.0, True), (10.0, False)], 10.5, 1.0, 0.5)
    True
    >>> eligible_around([(0.0, True), (10.0, False)], 12.0, 1.0, 0.5)
    False
    """
    state_at_start = False
    for changed, eligible in history:
        if changed <= moment - before:
            state_at_start = eligible
        elif changed <= moment + after and eligible:
            return True
    return state_at_start


BAD_REST = [
    ("POST", "/api/v1/sessions", b"{not json", {"Content-Type": "application/json"}, 400),
    ("POST", "/api/v1/sessions", b'{"state": {}}', {"Content-Type": "application/json"}, 422),
    ("POST", "/api/v1/sessions", b"owner=x", {"Content-Type": "text/plain"}, 415),
    ("GET", "/api/v1/sessions/not-a-uuid", None, {}, 400),
    ("GET", "/api/v1/sessions/6f1c0b5e-0d2c-4d7e-9f43-bd1e4f5a8c11", None, {}, 404),
    (
        "POST",
        "/api/v1/sessions",
        b'{"owner":"x","state":{"a":"' + b"x" * 70000 + b'"}}',
        {"Content-Type": "application/json"},
        413,
    ),
    (
        "POST",
        "/api/v1/sessions",
        b"x" * (2 * 1024 * 1024),
        {"Content-Type": "application/json"},
        413,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "code"),
    BAD_REST,
    ids=[
        "malformed-json",
        "invalid-schema",
        "wrong-content-type",
        "bad-id",
        "not-found",
        "oversized",
        "oversized-for-nginx",
    ],
)
def test_bad_input_gets_its_answer_and_the_service_keeps_serving(
    live: LiveSandbox,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    code: int,
) -> None:
    call = urllib.request.Request(live.ingress + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    assert status == code, raw[:300]
    assert json.loads(raw)["error"], raw[:300]
    assert request(live.ingress, "GET", "/health/ready")[0] == 200


def test_malformed_websocket_frames_get_answers(live: LiveSandbox) -> None:
    [session] = create_sessions(live, 1)
    socket = websocket.create_connection(live.ws_url, timeout=10)
    try:
        for frame in ("not json", '{"type": "dance"}', '{"type": "subscribe"}'):
            socket.send(frame)
            assert json.loads(socket.recv())["type"] == "error"
        socket.send_binary(b"\x00\x01")
        assert json.loads(socket.recv())["type"] == "error"
        socket.send(json.dumps({"type": "subscribe", "session": session, "since": 0}))
        messages = [json.loads(socket.recv()) for _ in range(2)]
        assert any(m.get("type") == "event" and m["seq"] == 1 for m in messages), messages
    finally:
        socket.close()


def test_kubectl_shows_the_ingress_and_its_address(live: LiveSandbox) -> None:
    rows = live.kubectl("get", "ingress", "-n", NAMESPACE).strip().splitlines()
    assert rows[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert rows[1].split()[1:5] == [
        "nginx",
        "api.harmonyflow.io,ws.api.harmonyflow.io",
        "127.0.0.1",
        "80",
    ]
