"""SLO evaluation, table by table: pure functions over plain window statistics."""

from __future__ import annotations

import pytest

from resilience.slo.objectives import (
    EndpointStats,
    RequestSelector,
    Slo,
    SloKind,
    Status,
    Window,
    WindowStats,
    evaluate,
    percentile,
)


def stats(seconds: float = 10.0, **entries: EndpointStats) -> WindowStats:
    """`GET_a=EndpointStats(...)` -> the entry ("GET", "a")."""
    return WindowStats(seconds, {tuple(k.split("_", 1)): v for k, v in entries.items()})


def ep(ok: int = 0, failed: int = 0, **latency: int) -> EndpointStats:
    """`ep(8, 1, ms5=7, ms40=1)`: 8 ok, 1 failed, seven at 5 ms and one at 40 ms."""
    return EndpointStats(ok, failed, {float(k[2:]): v for k, v in latency.items()})


@pytest.mark.parametrize(
    ("histogram", "q", "expected"),
    [
        pytest.param({}, 95, None, id="empty"),
        pytest.param({7.0: 1}, 50, 7.0, id="single"),
        pytest.param({1.0: 95, 9.0: 5}, 95, 1.0, id="p95-at-boundary"),
        pytest.param({1.0: 94, 9.0: 6}, 95, 9.0, id="p95-above"),
        pytest.param({1.0: 50, 2.0: 50}, 50, 1.0, id="median-nearest-rank"),
        pytest.param({3.0: 1, 1.0: 1, 2.0: 1}, 100, 3.0, id="unsorted-max"),
        pytest.param({1.0: 1, 2.0: 1}, 0.001, 1.0, id="tiny-q"),
    ],
)
def test_percentile(histogram: dict[float, int], q: float, expected: float | None) -> None:
    assert percentile(histogram, q) == expected


LATENCY = Slo("p95", SloKind.LATENCY, limit=30.0, percentile=95.0)
ERRORS = Slo("errors", SloKind.ERROR_RATE, limit=0.01)
STALE = Slo(
    "stale", SloKind.FAILURES, limit=0, requests=RequestSelector(types=frozenset({"LEDGER"}))
)
RPS = Slo("rps", SloKind.THROUGHPUT, limit=5.0)
LOST_SOCKETS = Slo(
    "lost", SloKind.EVENTS, limit=0, requests=RequestSelector(names=frozenset({"disconnect"}))
)


@pytest.mark.parametrize(
    ("slo", "window_stats", "status", "observed"),
    [
        pytest.param(LATENCY, stats(GET_a=ep(100, 0, ms5=100)), Status.PASS, 5.0, id="fast"),
        pytest.param(
            LATENCY, stats(GET_a=ep(100, 0, ms5=90, ms40=10)), Status.FAIL, 40.0, id="slow"
        ),
        pytest.param(
            LATENCY,
            stats(GET_a=ep(10, 90, ms40=10)),  # 90 fast failures must not rescue p95
            Status.FAIL,
            40.0,
            id="failures-do-not-count-in-latency",
        ),
        pytest.param(LATENCY, stats(GET_a=ep(0, 5)), Status.FAIL, None, id="no-success"),
        pytest.param(LATENCY, stats(), Status.FAIL, 0.0, id="no-requests"),
        pytest.param(ERRORS, stats(GET_a=ep(990, 10)), Status.PASS, 0.01, id="budget-exactly"),
        pytest.param(ERRORS, stats(GET_a=ep(989, 11)), Status.FAIL, 0.011, id="budget-spent"),
        pytest.param(
            ERRORS, stats(GET_a=ep(500, 5), PUT_a=ep(489, 6)), Status.FAIL, 0.011, id="summed"
        ),
        pytest.param(STALE, stats(GET_a=ep(9, 9)), Status.PASS, 0.0, id="stale-absent"),
        pytest.param(STALE, stats(**{"LEDGER_stale read": ep(0, 1)}), Status.FAIL, 1.0, id="stale"),
        pytest.param(RPS, stats(10.0, GET_a=ep(50, 50)), Status.PASS, 5.0, id="rps-ok-only"),
        pytest.param(RPS, stats(10.0, GET_a=ep(49, 0)), Status.FAIL, 4.9, id="rps-low"),
        pytest.param(RPS, stats(0.0, GET_a=ep(49, 0)), Status.FAIL, 0.0, id="rps-no-time"),
        pytest.param(LOST_SOCKETS, stats(GET_a=ep(9, 1)), Status.PASS, 0.0, id="none-lost"),
        pytest.param(
            LOST_SOCKETS, stats(WS_disconnect=ep(2, 0)), Status.FAIL, 2.0, id="graceful-counts"
        ),
        pytest.param(
            LOST_SOCKETS, stats(WS_disconnect=ep(1, 1)), Status.FAIL, 2.0, id="every-loss"
        ),
    ],
)
def test_evaluate(
    slo: Slo, window_stats: WindowStats, status: Status, observed: float | None
) -> None:
    (verdict,) = evaluate([slo], {Window.ALL: window_stats})
    assert verdict.status is status, verdict.line()
    assert verdict.observed == (pytest.approx(observed) if observed is not None else None)
    assert verdict.line().startswith(f"{status.value} {slo.name}: ")
    assert "\n" not in verdict.line()


@pytest.mark.parametrize(
    ("selector", "entries", "ok"),
    [
        pytest.param(RequestSelector(), ["GET a", "WS ping", "LEDGER x"], 3, id="all"),
        pytest.param(RequestSelector(types=frozenset({"GET"})), ["GET a", "PUT a"], 1, id="type"),
        pytest.param(
            RequestSelector(names=frozenset({"ping"})), ["WS ping", "WS fanout"], 1, id="name"
        ),
        pytest.param(
            RequestSelector(exclude_types=frozenset({"LEDGER"})),
            ["GET a", "LEDGER x"],
            1,
            id="not-type",
        ),
        pytest.param(
            RequestSelector(types=frozenset({"WS"}), exclude_names=frozenset({"disconnect"})),
            ["WS ping", "WS disconnect", "GET a"],
            1,
            id="type-minus-name",
        ),
    ],
)
def test_selectors(selector: RequestSelector, entries: list[str], ok: int) -> None:
    slo = Slo("n", SloKind.THROUGHPUT, limit=0.0, requests=selector)
    window = WindowStats(1.0, {tuple(e.split(" ", 1)): ep(1) for e in entries})
    assert evaluate([slo], {Window.ALL: window})[0].observed == ok


def test_a_window_that_did_not_happen_is_skipped_not_failed() -> None:
    fault = Slo("fault-budget", SloKind.ERROR_RATE, limit=0.0, window=Window.FAULT)
    (verdict,) = evaluate([fault], {Window.ALL: stats(GET_a=ep(1, 1))})
    assert verdict.status is Status.SKIPPED and verdict.passed
    assert verdict.line() == "SKIP fault-budget: window fault did not occur"


def test_each_slo_reads_its_own_window() -> None:
    budget = Slo("fault-budget", SloKind.ERROR_RATE, limit=0.0, window=Window.FAULT)
    windows = {Window.ALL: stats(GET_a=ep(99, 1)), Window.FAULT: stats(GET_a=ep(9, 1))}
    (verdict,) = evaluate([budget], windows)
    assert verdict.status is Status.FAIL
    assert verdict.line() == (
        "FAIL fault-budget: error rate in window fault = 0.1000 (1/10), limit <= 0"
    )


def test_min_requests_is_the_evidence_needed() -> None:
    slo = Slo("p95", SloKind.LATENCY, limit=30.0, min_requests=50)
    (verdict,) = evaluate([slo], {Window.ALL: stats(GET_a=ep(49, 0, ms1=49))})
    assert verdict.status is Status.FAIL and "only 49 request(s)" in verdict.line()


def test_docstring_examples() -> None:
    import doctest  # noqa: PLC0415

    from resilience.load import requests, windows  # noqa: PLC0415
    from resilience.slo import objectives as slo  # noqa: PLC0415

    for module in (slo, windows, requests):
        assert doctest.testmod(module).failed == 0, module.__name__
