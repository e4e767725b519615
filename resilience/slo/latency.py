"""The dependency-latency hypothesis, decided from the load's latency (pure).

A delay toward a dependency, far below every timeout on the path, may cost the service
time but nothing else: either it stays within its latency SLO, or it is slower by
exactly the injected latency for each round trip a request makes to the dependency.
How many round trips that is, nobody should type: it is measured. The experiment holds
the delay twice, at L then at 2 L; the first hold must show the delay at all (the p50
rises by at least one round trip, or the fault never reached a request), and the
second must cost twice what the first cost, within 10 % (the precision the sandbox's
delay keeps) and one jitter. More than twice means the delay cost more than its own
time: a pool that queues, a retry, a timeout that fired.

    >>> latency_verdict(LatencyFigures(5.0, 355.0, 373.0), 50.0, 5.0, 200.0, 95.0).line
    'p50 5 → 355 ms: +350 ms, at least one round trip of 50 ms (7.0 x the latency)'
    >>> latency_verdict(
    ...     LatencyFigures(5.0, 900.0, 950.0), 100.0, 5.0, 200.0, 95.0, Reference(350.0, 50.0)
    ... ).line
    'p50 5 → 900 ms: +895 ms at 100 ms, against +350 ms at 50 ms: 2.56 x for 2 x \
the latency (expected 700 ± 75 ms); and p95 950 ms is above the SLO of 200 ms'
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISION = 0.10  # the sandbox's delay is within 10 % (tests/sandbox/live/test_pod_network_live.py)


@dataclass(frozen=True)
class LatencyFigures:
    """Successful requests' latency (ms): p50 before the fault, p50 and the SLO's
    percentile during it (None: no successful request)."""

    p50_before: float | None
    p50_during: float | None
    slo_percentile_during: float | None


@dataclass(frozen=True)
class Reference:
    """What an earlier hold of the same dependency cost: its p50 shift at its latency."""

    shift_ms: float
    injected_ms: float


@dataclass(frozen=True)
class LatencyVerdict:
    held: bool
    line: str
    shift_ms: float | None = None  # this hold's p50 shift, the next hold's reference


def latency_verdict(
    figures: LatencyFigures,
    injected_ms: float,
    jitter_ms: float,
    slo_ms: float,
    slo_percentile: float,
    reference: Reference | None = None,
) -> LatencyVerdict:
    """Held when the SLO's percentile during the fault is within the SLO, or the p50 shift
    is as injected: at least one round trip (first hold), proportional to the earlier
    hold's (a `reference`)."""
    p = f"p{slo_percentile:g}"
    during = figures.slo_percentile_during
    within_slo = during is not None and during <= slo_ms
    slo_text = (
        f"{p} {during:.0f} ms is {'within' if within_slo else 'above'} the SLO of {slo_ms:g} ms"
        if during is not None
        else "no successful request during the fault"
    )
    if figures.p50_before is None or figures.p50_during is None:
        return LatencyVerdict(within_slo, f"no p50 to compare (before or during); {slo_text}")
    shift = figures.p50_during - figures.p50_before
    head = f"p50 {figures.p50_before:.0f} → {figures.p50_during:.0f} ms: {shift:+.0f} ms"
    if reference is None:
        as_injected = shift >= (1 - PRECISION) * injected_ms
        text = (
            f"{head}, at least one round trip of {injected_ms:g} ms "
            f"({shift / injected_ms:.1f} x the latency)"
            if as_injected
            else f"{head}, less than one round trip of {injected_ms:g} ms: "
            "the delay reached no request"
        )
    else:
        scale = injected_ms / reference.injected_ms
        expected = reference.shift_ms * scale
        margin = PRECISION * expected + jitter_ms
        as_injected = abs(shift - expected) <= margin
        ratio = shift / reference.shift_ms if reference.shift_ms else float("inf")
        text = (
            f"{head} at {injected_ms:g} ms, against {reference.shift_ms:+.0f} ms at "
            f"{reference.injected_ms:g} ms: {ratio:.2f} x for {scale:g} x the latency "
            f"(expected {expected:.0f} ± {margin:.0f} ms)"
        )
    if as_injected:
        return LatencyVerdict(True, text, shift)
    return LatencyVerdict(within_slo, f"{text}; {'or' if within_slo else 'and'} {slo_text}", shift)
