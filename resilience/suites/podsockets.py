"""Sockets per pod: read from the service's own gauge, described, and judged for balance.

Each pod exports `session_state_websocket_connections`, its open WebSockets; Prometheus
scrapes it per pod (label `pod`), as on staging, so `sockets_by_pod` reads one instant
query and no suite talks to a pod directly.

The rebalancing check (`check_rebalanced`): long-lived sockets stay on the pod they
first reached, so after an HPA scale-out the new pods get only the sockets opened
since, and the old pods stay as hot as before the scale-out that was meant to relieve
them. A service that ages its sockets out (release 1.2.0's WS_MAX_AGE_SECONDS, closed
with 1012 so that clients reconnect) spreads them again within one max age: each
client reconnects through the ingress, which deals connections out round-robin over
all the pods it has. The check compares each new pod with its fair share (sockets /
pods); a new pod below `min_share` of it has not been rebalanced to.

    >>> result = check_rebalanced({"a": 4990, "b": 10}, {"a"}, 0.5)
    >>> print(result.first.message)
    new pod b holds 10 of 5000 sockets, 0.4 % of its fair share of 2500 (2 pods): limit \
rebalance.min_new_pod_share >= 50 %
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping

from resilience.chaos.prometheus import instant_query, prometheus_url
from resilience.slo.result import CheckResult, Violation

GAUGE = "session_state_websocket_connections"
QUERY_TIMEOUT = 10.0
POLL_SECONDS = 1.0
REBALANCE_LIMIT = "rebalance.min_new_pod_share"


def sockets_by_pod(samples: Iterable[tuple[Mapping[str, str], float]]) -> dict[str, int]:
    """Open sockets per pod from the gauge's samples (labels, value): the largest sample
    of each pod (a pod scraped through two targets counts once); unlabelled ones skipped.

    >>> sockets_by_pod([({"pod": "a"}, 3.0), ({"pod": "b"}, 5.0), ({}, 9.0)])
    {'a': 3, 'b': 5}
    """
    found: dict[str, int] = {}
    for labels, value in samples:
        pod = labels.get("pod")
        if pod:
            found[pod] = max(found.get(pod, 0), round(value))
    return dict(sorted(found.items()))


def describe_spread(by_pod: Mapping[str, int]) -> str:
    """`3 pods, 100 sockets: a 50, b 30, c 20 (min 20, max 50)`.

    >>> describe_spread({"a": 50, "b": 30, "c": 20})
    '3 pods, 100 sockets: a 50, b 30, c 20 (min 20, max 50)'
    """
    if not by_pod:
        return "no pod reported sockets"
    values = list(by_pod.values())
    shown = ", ".join(f"{pod} {count}" for pod, count in sorted(by_pod.items()))
    return (
        f"{len(by_pod)} pods, {sum(values)} sockets: {shown} (min {min(values)}, max {max(values)})"
    )


def check_rebalanced(
    after: Mapping[str, int], pods_before: Iterable[str], min_share: float
) -> CheckResult:
    """Every pod that joined (in `after`, not in `pods_before`) holds at least `min_share`
    of its fair share of the sockets; the violation names the pod, its count, its share
    and the limit. No new pod, or no socket at all: nothing to judge (no violation)."""
    before = set(pods_before)
    total = sum(after.values())
    new = sorted(pod for pod in after if pod not in before)
    details: dict[str, float | int | str] = {"pods": len(after), "new_pods": len(new)}
    if not new or total == 0:
        return CheckResult("rebalancing", (), details)
    fair = total / len(after)
    shares = {pod: after[pod] / fair for pod in new}
    details["min_new_pod_share"] = round(min(shares.values()), 4)
    violations = tuple(
        Violation(
            REBALANCE_LIMIT,
            min_share,
            share,
            0.0,
            -1,
            f"new pod {pod} holds {after[pod]} of {total} sockets, {share * 100:.1f} % of its "
            f"fair share of {fair:.0f} ({len(after)} pods): limit {REBALANCE_LIMIT} >= "
            f"{min_share * 100:g} %",
        )
        for pod, share in shares.items()
        if share < min_share
    )
    return CheckResult("rebalancing", violations, details)


def connected_share(max_age: float, backoff: float) -> float:
    """The least share of sessions connected at any moment when each socket lives
    `max_age` seconds and its client waits up to `backoff` seconds to reconnect: what a
    count of sockets may be compared with under a service that ages them out.

    >>> connected_share(60, 20)
    0.75
    """
    return max_age / (max_age + backoff) if max_age > 0 else 1.0


# ---- reading them (thin I/O) ----


def read_sockets_by_pod(
    namespace: str,
    fresh_after: float,
    timeout: float,
    pods: Collection[str] = (),
    url: str | None = None,
) -> dict[str, int]:
    """Sockets per pod of `namespace` from Prometheus, once every pod's sample was scraped
    after `fresh_after` (wall clock) and each of `pods` has one (a new pod is scraped
    once service discovery found it): a bounded poll, a scrape interval or two.

    Raises TimeoutError naming the oldest sample when no fresh scrape came in `timeout`.
    """
    selector = f'{GAUGE}{{namespace="{namespace}"}}'
    base = prometheus_url(url)
    deadline = time.monotonic() + timeout
    while True:
        stamps = instant_query(f"timestamp({selector})", QUERY_TIMEOUT, base)
        oldest = min((s.value for s in stamps), default=0.0)
        seen = {dict(s.labels).get("pod") for s in stamps}
        if stamps and oldest >= fresh_after and set(pods) <= seen:
            samples = instant_query(selector, QUERY_TIMEOUT, base)
            return sockets_by_pod((dict(s.labels), s.value) for s in samples)
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"no scrape of {selector} newer than {fresh_after:.0f} within {timeout:g}s "
                f"(oldest sample at {oldest:.0f}, {len(stamps)} series; missing pods: "
                f"{', '.join(sorted(set(pods) - seen)) or 'none'})"
            )
        time.sleep(POLL_SECONDS)
