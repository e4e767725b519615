"""The readiness-follows-the-database probe: its verdict table, its window from deploy/base,
and its polling loop on a fake clock."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import pytest
from chaoslib.exceptions import ActivityFailed

from resilience.chaos import readiness
from resilience.chaos.readiness import (
    LIMIT,
    EndpointsSeen,
    emptying_failure,
    emptying_window,
    intended_readiness,
)
from resilience.chaos.waiting import POLL_SECONDS
from resilience.policy import ProbeKind, ProbePolicy, load_policy
from tests.builders import REPO_ROOT

PROBE = ProbePolicy(ProbeKind.READINESS, "/health/ready", 8080, "HTTP", 0, 5, 1, 1, 3)


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(readiness).failed == 0


@pytest.mark.parametrize(
    ("seen", "fails"),
    [
        (EndpointsSeen(0.0, 0, 0), False),  # nothing was ready to begin with
        (EndpointsSeen(12.0, 0, 3), False),
        (EndpointsSeen(21.6, 1, 3), True),  # one pod kept serving
        (EndpointsSeen(30.0, 3, 3), True),  # readiness ignores the database
    ],
)
def test_the_endpoints_must_be_empty_at_the_end_of_the_wait(
    seen: EndpointsSeen, fails: bool
) -> None:
    failure = emptying_failure(seen, PROBE)
    assert (failure is not None) is fails
    if failure is not None:
        assert failure.startswith(LIMIT)
        assert f"{seen.ready} of {seen.before} pods" in failure
        assert f"{seen.seconds:.1f} s" in failure


def test_the_window_is_deploy_bases_readiness_detection_plus_slack() -> None:
    intended = load_policy(REPO_ROOT / "deploy" / "base").probes[ProbeKind.READINESS]
    assert intended_readiness("deploy/base") == intended
    assert emptying_window(intended) == (
        intended.worst_detection_seconds + intended.period_seconds + POLL_SECONDS
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _run(monkeypatch: pytest.MonkeyPatch, counts: Iterator[int]) -> float:
    clock = FakeClock()
    monkeypatch.setattr(readiness, "time", clock)
    monkeypatch.setattr(readiness, "ready_endpoints", lambda *a, **k: next(counts))
    return readiness.pods_leave_endpoints_seconds("svc", "ns")


def test_the_probe_returns_when_the_last_pod_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = _run(monkeypatch, iter([3, 3, 2, 1, 0]))
    assert seconds == 4 * POLL_SECONDS


def test_the_probe_fails_naming_the_limit_when_a_pod_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = emptying_window(intended_readiness("deploy/base"))
    with pytest.raises(ActivityFailed, match=rf"{LIMIT}: 3 of 3 pods still ready") as failed:
        _run(monkeypatch, iter(lambda: 3, None))
    observed = float(str(failed.value).split(" pods still ready endpoints ")[1].split(" s ")[0])
    assert window < observed <= window + POLL_SECONDS
