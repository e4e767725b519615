"""dependency-latency's decisions as tables: the latency hypothesis (within the SLO, or
slower by the injected latency per round trip: at least one, then in proportion) and the
safeguard derived from the load profile's fault-window budget."""

from __future__ import annotations

import pytest

from resilience.chaos.controls.fault_windows import budget_breach
from resilience.load.certify import PROFILES
from resilience.load.profile import load_profile, resolve_profile
from resilience.slo.latency import LatencyFigures, Reference, latency_verdict
from resilience.slo.objectives import (
    EndpointStats,
    RequestSelector,
    Slo,
    SloKind,
    Window,
    WindowStats,
)

# release.yaml's rest-latency-p95, read rather than typed
RELEASE = load_profile(resolve_profile("release", PROFILES)).slo("rest-latency-p95")


FIRST = Reference(350.0, 50.0)  # the first hold: +350 ms at 50 ms (7 round trips)


@pytest.mark.parametrize(
    ("figures", "injected", "reference", "held", "says"),
    [
        pytest.param(
            LatencyFigures(5.0, 355.0, 373.0),
            50.0,
            None,
            True,
            "at least one round trip of 50 ms (7.0 x the latency)",
            id="first-hold-shows-the-delay",
        ),
        pytest.param(
            LatencyFigures(5.0, 7.0, 300.0),
            50.0,
            None,
            False,
            "the delay reached no request",
            id="first-hold-without-effect-above-the-slo",
        ),
        pytest.param(
            LatencyFigures(5.0, 7.0, 20.0),
            50.0,
            None,
            True,
            "within the SLO",
            id="first-hold-without-effect-within-the-slo",
        ),
        pytest.param(
            LatencyFigures(5.0, 705.0, 740.0),
            100.0,
            FIRST,
            True,
            "2.00 x for 2 x the latency (expected 700 ± 75 ms)",
            id="second-hold-costs-twice",
        ),
        pytest.param(
            LatencyFigures(5.0, 905.0, 950.0),
            100.0,
            FIRST,
            False,
            "2.57 x for 2 x the latency",
            id="second-hold-costs-more-than-its-time",
        ),
        pytest.param(
            LatencyFigures(5.0, 500.0, 520.0),
            100.0,
            FIRST,
            False,
            "1.41 x for 2 x the latency",
            id="second-hold-costs-less-than-its-time",
        ),
        pytest.param(
            LatencyFigures(10.0, 400.0, 190.0),
            100.0,
            FIRST,
            True,
            "within the SLO",
            id="not-proportional-but-within-the-slo",
        ),
        pytest.param(
            LatencyFigures(10.0, None, None),
            50.0,
            None,
            False,
            "no successful request",
            id="no-success-during-the-fault",
        ),
        pytest.param(
            LatencyFigures(None, 60.0, 150.0),
            50.0,
            None,
            True,
            "no p50 to compare",
            id="no-baseline-but-within-the-slo",
        ),
    ],
)
def test_latency_verdict(
    figures: LatencyFigures, injected: float, reference: Reference | None, held: bool, says: str
) -> None:
    verdict = latency_verdict(figures, injected, 5.0, RELEASE.limit, RELEASE.percentile, reference)
    assert verdict.held is held
    assert says in verdict.line


GETS = RequestSelector(frozenset({"GET"}))
NONE_FAIL = Slo("none-fail", SloKind.FAILURES, 0.0, Window.FAULT, GETS)
RATIO = Slo("quarter", SloKind.ERROR_RATE, 0.25, Window.FAULT)
ELSEWHERE = Slo("baseline", SloKind.FAILURES, 0.0, Window.BASELINE)


def fault(ok: int, failed: int) -> WindowStats:
    return WindowStats(5.0, {("GET", "/s"): EndpointStats(ok, failed)})


@pytest.mark.parametrize(
    ("slos", "stats", "breach"),
    [
        pytest.param(
            [NONE_FAIL],
            fault(3, 1),
            "FAIL none-fail: failures in window fault = 1, limit <= 0",
            id="a-zero-budget-stops-at-the-first-failure-however-few-requests",
        ),
        pytest.param([NONE_FAIL], fault(50, 0), None, id="no-failure-no-stop"),
        pytest.param([RATIO], fault(5, 5), None, id="a-ratio-waits-for-min-requests"),
        pytest.param(
            [RATIO],
            fault(20, 30),
            "FAIL quarter: error rate in window fault = 0.6000 (30/50), limit <= 0.25",
            id="a-ratio-over-its-budget",
        ),
        pytest.param([ELSEWHERE], fault(0, 9), None, id="other-windows-are-not-the-safeguards"),
        pytest.param([NONE_FAIL], None, None, id="no-fault-window-yet"),
    ],
)
def test_budget_breach(slos: list[Slo], stats: WindowStats | None, breach: str | None) -> None:
    assert budget_breach(slos, stats, min_requests=40) == breach


def test_the_dependency_latency_profile_allows_no_failure_in_the_fault_window() -> None:
    profile = load_profile(resolve_profile("suite-dependency-latency", PROFILES))
    assert budget_breach(profile.slos, fault(200, 1), 40) is not None
    assert budget_breach(profile.slos, fault(200, 0), 40) is None
