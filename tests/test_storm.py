"""The reconnect storm's and the rebalancing check's decisions, table by table
(resilience/suites/storm.py, resilience/suites/podsockets.py); each check also against a
seeded fault.

The rebalancing check's twin against the `never-rebalances` tag's measured numbers, on
real processes, is tests/sandbox/session_state/test_rebalancing.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest

from resilience.load.certify import PROFILES
from resilience.load.profile import load_profile, resolve_profile
from resilience.load.requests import RequestRecord
from resilience.observe.probes import PodHistory, ReadyTransition, Restart
from resilience.suites.podsockets import (
    REBALANCE_LIMIT,
    check_rebalanced,
    connected_share,
    sockets_by_pod,
)
from resilience.suites.storm import (
    INGRESS_LIMIT,
    RECONNECT,
    RECONNECT_LIMIT,
    SURVIVOR_LIMIT,
    Distribution,
    check_ingress_refused_nothing,
    check_reconnect_time,
    check_survivors_steady,
    connect_errors,
    entry_distribution,
    exhaustion_in_log,
    reconnect_bound,
    refusals_by_mechanism,
)

# ---- the reconnect bound: from the profile, never typed ----


@pytest.mark.parametrize(
    ("env", "seconds"),
    [
        pytest.param({"HF_WAIT_MAX": "20", "HF_TIMEOUT": "10"}, 30.0, id="storm-profile-values"),
        pytest.param({}, 11.5, id="client-defaults"),
        pytest.param({"HF_WAIT_MIN": "8", "HF_WAIT_MAX": "2"}, 18.0, id="max-below-min"),
    ],
)
def test_the_reconnect_bound_is_the_backoff_plus_one_client_timeout(
    env: Mapping[str, str], seconds: float
) -> None:
    assert reconnect_bound(env).seconds == seconds


def test_the_storm_profile_bound_names_its_inputs() -> None:
    profile = load_profile(resolve_profile("ws-storm", PROFILES))
    env = profile.load.env
    bound = reconnect_bound(env)
    assert bound.seconds == float(env["HF_WAIT_MAX"]) + float(env["HF_TIMEOUT"])
    assert f"HF_WAIT_MAX {env['HF_WAIT_MAX']}s" in bound.why
    assert f"HF_TIMEOUT {env['HF_TIMEOUT']}s" in bound.why


def reconnect(t: int, ok_ms: Mapping[float, int], failed: int = 0) -> RequestRecord:
    return RequestRecord(t, *RECONNECT, ok=sum(ok_ms.values()), failed=failed, latency_ms=ok_ms)


@pytest.mark.parametrize(
    ("histogram", "violated", "observed"),
    [
        pytest.param({2000.0: 98, 25_000.0: 2}, False, 25.0, id="p99-within"),
        pytest.param({2000.0: 97, 31_000.0: 3}, True, 31.0, id="p99-over-seeded"),
        pytest.param({}, True, 0.0, id="no-storm-proves-nothing"),
    ],
)
def test_reconnect_time_check(histogram: dict[float, int], violated: bool, observed: float) -> None:
    bound = reconnect_bound({"HF_WAIT_MAX": "20", "HF_TIMEOUT": "10"})
    found, _ = entry_distribution([reconnect(100, histogram)], RECONNECT, 100, 101)
    result = check_reconnect_time(found, bound, "storm")
    assert result.ok is not violated
    if violated:
        assert result.first is not None
        assert result.first.limit == RECONNECT_LIMIT and result.first.observed == observed
        assert "30s" in result.first.message or "no socket reconnected" in result.first.message


def test_only_the_reconnects_of_the_window_count() -> None:
    records = [
        reconnect(99, {90_000.0: 1}),
        reconnect(100, {1000.0: 2}, failed=1),
        reconnect(130, {90_000.0: 1}),
        RequestRecord(100, "WS", "ping", 5, 0, {3.0: 5}),
    ]
    found, failed = entry_distribution(records, RECONNECT, 100, 130)
    assert (found.count, failed, found.quantile(100)) == (2, 1, 1000.0)


def test_the_distribution_prints_counts_per_bucket() -> None:
    shown = Distribution({400.0: 6, 1500.0: 3, 40_000.0: 1}).bars([1000.0, 2000.0], width=6)
    assert shown == [
        "     <= 1s      6 ######",
        "     <= 2s      3 ###",
        "      > 2s      1 #",
    ]


# ---- the pods that stayed ----


def history(
    pod: str, ready: tuple[tuple[float, bool], ...] = (), restarts: tuple[float, ...] = ()
) -> PodHistory:
    return PodHistory(
        pod,
        0.0,
        tuple(ReadyTransition(wall, index, flag) for index, (wall, flag) in enumerate(ready)),
        tuple(Restart(wall, 0, "app", 1, 137, "Error", wall) for wall in restarts),
    )


@pytest.mark.parametrize(
    ("histories", "violations"),
    [
        pytest.param({"a": history("a", ((0.0, True),))}, 0, id="steady"),
        pytest.param({"a": history("a", ((0.0, True),), (150.0,))}, 1, id="liveness-restart"),
        pytest.param({"a": history("a", ((0.0, True), (120.0, False)))}, 1, id="went-unready"),
        pytest.param({"a": history("a", ((0.0, True), (50.0, False)))}, 0, id="before-the-storm"),
        pytest.param({"k": history("k", ((0.0, True), (120.0, False)))}, 0, id="the-killed-one"),
    ],
)
def test_pods_that_stayed(histories: dict[str, PodHistory], violations: int) -> None:
    result = check_survivors_steady(histories, {"a"}, since=100.0)
    assert len(result.violations) == violations
    assert all(v.limit == SURVIVOR_LIMIT for v in result.violations)


# ---- what the ingress refused ----


def test_exhaustion_is_counted_by_mechanism() -> None:
    lines = [
        "2026/12/07 03:20:01 [alert] 8#8: *5 4096 worker_connections are not enough while "
        "connecting to upstream",
        "2026/12/07 03:20:01 [alert] 8#8: 4096 worker_connections are not enough",
        "2026/12/07 03:20:02 [crit] 8#8: accept4() failed (24: Too many open files)",
        "2026/12/07 03:20:03 [crit] 8#8: *9 connect() to 127.0.2.5:8443 failed (99: Cannot "
        "assign requested address) while connecting to upstream",
        "2026/12/07 03:20:04 [notice] 1#1: signal 1 (SIGHUP) received, reconfiguring",
    ]
    assert exhaustion_in_log(lines) == Counter(
        {"worker_connections": 2, "open files": 1, "ephemeral ports": 1}
    )


@pytest.mark.parametrize(
    ("text", "mechanism"),
    [
        pytest.param(
            "WebSocketBadStatusException: Handshake status 503 Service", "503 no ready endpoints"
        ),
        pytest.param(
            "WebSocketBadStatusException: Handshake status 502 Bad Gateway", "502 bad gateway"
        ),
        pytest.param(
            "WebSocketBadStatusException: Handshake status 500 Internal", "500 internal error"
        ),
        pytest.param("WebSocketTimeoutException: timed out", "timeout"),
        pytest.param("ConnectionRefusedError: [Errno 111] Connection refused", "refused"),
        pytest.param("ConnectionResetError: [Errno 104] Connection reset by peer", "reset"),
        pytest.param("ServerDisconnectedError: Server disconnected", "closed unanswered"),
        pytest.param(
            "WebSocketConnectionClosedException: Connection to remote host was lost.",
            "closed unanswered",
        ),
        pytest.param("OSError: something else", "other"),
    ],
)
def test_client_refusals_by_mechanism(text: str, mechanism: str) -> None:
    assert refusals_by_mechanism([(text, 3)]) == Counter({mechanism: 3})


def test_only_connects_since_the_fault_count() -> None:
    records = [
        RequestRecord(99, "WSCONN", "connect", 0, 1, {}, {"503": 1}),
        RequestRecord(100, "WSCONN", "connect", 5, 2, {}, {"503": 2}),
        RequestRecord(100, "GET", "/api", 0, 9, {}, {"503": 9}),
    ]
    assert connect_errors(records, 100) == [("503", 2)]


@pytest.mark.parametrize(
    ("log", "client", "violations"),
    [
        pytest.param({}, {}, 0, id="nothing-refused"),
        pytest.param({"worker_connections": 3}, {}, 1, id="seeded-nginx-short"),
        pytest.param({}, {"reset": 2}, 1, id="seeded-client-refused"),
        pytest.param({"open files": 1}, {"timeout": 1}, 2, id="both"),
    ],
)
def test_ingress_refusals_check(
    log: dict[str, int], client: dict[str, int], violations: int
) -> None:
    result = check_ingress_refused_nothing(log, client, log_read=True)
    assert len(result.violations) == violations
    for violation in result.violations:
        assert violation.limit == INGRESS_LIMIT and violation.observed > 0
        assert INGRESS_LIMIT in violation.message


# ---- sockets per pod and rebalancing ----


def test_sockets_by_pod_reads_the_gauge_per_pod() -> None:
    samples = [({"pod": "b", "namespace": "h"}, 7.0), ({"pod": "a"}, 2.0), ({"job": "x"}, 1.0)]
    assert sockets_by_pod(samples) == {"a": 2, "b": 7}


@pytest.mark.parametrize(
    ("after", "violated"),
    [
        pytest.param({"a": 600, "b": 600, "c": 600, "d": 590, "e": 610}, (), id="rebalanced"),
        pytest.param({"a": 1000, "b": 1000, "c": 990, "d": 5, "e": 5}, ("d", "e"), id="stuck"),
        pytest.param({"a": 1000, "b": 1000, "c": 1000}, (), id="no-new-pod"),
        pytest.param({"a": 0, "b": 0, "c": 0, "d": 0}, (), id="no-socket"),
        pytest.param({"a": 800, "b": 800, "c": 800, "d": 300, "e": 300}, (), id="half-share"),
        pytest.param({"a": 800, "b": 800, "c": 800, "d": 299, "e": 301}, ("d",), id="just-under"),
    ],
)
def test_rebalancing_check(after: dict[str, int], violated: tuple[str, ...]) -> None:
    result = check_rebalanced(after, {"a", "b", "c"}, 0.5)
    assert tuple(v.message.split()[2] for v in result.violations) == violated
    for violation in result.violations:
        assert violation.limit == REBALANCE_LIMIT and violation.limit_value == 0.5
        assert violation.observed < 0.5 and f"{REBALANCE_LIMIT} >= 50 %" in violation.message


def test_the_rebalance_profile_gives_the_check_its_limit() -> None:
    profile = load_profile(resolve_profile("ws-rebalance", PROFILES))
    assert 0 < profile.limit("rebalance_min_share") < 1
    assert profile.limit("socket_max_age_seconds") > 0


@pytest.mark.parametrize(
    ("max_age", "reconnect", "share"),
    [
        pytest.param(60.0, 30.0, 2 / 3, id="rebalance-profile"),
        pytest.param(0.0, 30.0, 1.0, id="never-aged-out"),
        pytest.param(3600.0, 1.0, 3600 / 3601, id="browser-like"),
    ],
)
def test_connected_share(max_age: float, reconnect: float, share: float) -> None:
    assert connected_share(max_age, reconnect) == pytest.approx(share)
