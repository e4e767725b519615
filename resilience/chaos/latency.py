"""The dependency-latency hypothesis, decided from the load's latency (pure).

A delay toward a dependency, far below every timeout on the path, may cost the service
time but nothing else: either it stays within its latency SLO, or it is slower by the
injected latency for each round trip a request makes to the dependency, and not more.
More than that means the delay cost more than its own time: a pool that queues, a
retry, a timeout that fired. The p50 compared mixes requests with fewer round trips (a
read served by the cache makes none to the database), so a smaller increase is no
failure; the bound is `round_trips` x (latency + jitter), the worst each round trip can
draw.

    >>> latency_verdict(LatencyFigures(10.0, 62.0, 250.0), 50.0, 5.0, 1, 200.0, 95.0).held
    True
    >>> latency_verdict(LatencyFigures(10.0, 90.0, 250.0), 50.0, 5.0, 1, 200.0, 95.0).line
    'p50 10 → 90 ms: +80 ms, more than 1 round trip(s) x (50 ms + 5 ms jitter) = 55 ms; \
and p95 250 ms is above the SLO of 200 ms'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyFigures:
    """Successful requests' latency (ms): p50 before the fault, p50 and the SLO's
    percentile during it (None: no successful request)."""

    p50_before: float | None
    p50_during: float | None
    slo_percentile_during: float | None


@dataclass(frozen=True)
class LatencyVerdict:
    held: bool
    line: str


def latency_verdict(
    figures: LatencyFigures,
    injected_ms: float,
    jitter_ms: float,
    round_trips: int,
    slo_ms: float,
    slo_percentile: float,
) -> LatencyVerdict:
    """Held when the SLO's percentile during the fault is within the SLO, or the p50 rose
    by at most `round_trips` x (`injected_ms` + `jitter_ms`)."""
    p = f"p{slo_percentile:g}"
    bound = round_trips * (injected_ms + jitter_ms)
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
    as_injected = shift <= bound
    p50_text = (
        f"p50 {figures.p50_before:.0f} → {figures.p50_during:.0f} ms: {shift:+.0f} ms, "
        f"{'at most' if as_injected else 'more than'} {round_trips} round trip(s) x "
        f"({injected_ms:g} ms + {jitter_ms:g} ms jitter) = {bound:g} ms"
    )
    return LatencyVerdict(
        within_slo or as_injected, f"{p50_text}; {'or' if as_injected else 'and'} {slo_text}"
    )
