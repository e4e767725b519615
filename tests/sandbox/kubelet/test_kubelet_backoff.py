"""CrashLoopBackOff delays: 0, 10, 20, 40 ... capped at 300 s, reset after 10 min."""

from __future__ import annotations

import pytest

from sandbox.kube.kubelet.backoff import (
    BackoffEntry,
    BackoffPolicy,
    after_restart,
    delay_sequence,
    remaining_delay,
)
from sandbox.kube.settings import ControlPlaneSettings

UPSTREAM = BackoffPolicy.from_settings(ControlPlaneSettings())


@pytest.mark.parametrize(
    ("policy", "crashes", "delays"),
    [
        pytest.param(UPSTREAM, 1, [0], id="first-restart-immediate"),
        pytest.param(UPSTREAM, 9, [0, 10, 20, 40, 80, 160, 300, 300, 300], id="doubling-capped"),
        pytest.param(BackoffPolicy(1, 4, 8), 5, [0, 1, 2, 4, 4], id="short-flags"),
    ],
)
def test_delay_sequence(policy: BackoffPolicy, crashes: int, delays: list[float]) -> None:
    assert delay_sequence(policy, crashes) == delays


@pytest.mark.parametrize(
    ("entry", "finished_at", "now", "delay"),
    [
        pytest.param(None, 100, 100, 0, id="no-entry"),
        pytest.param(BackoffEntry(20, 90), 100, 100, 20, id="full-wait-after-exit"),
        pytest.param(BackoffEntry(20, 90), 100, 115, 5, id="part-already-waited"),
        pytest.param(BackoffEntry(20, 90), 100, 130, 0, id="waited-out"),
        pytest.param(BackoffEntry(300, 0), 600, 600, 300, id="exactly-ten-minutes-still-counts"),
        pytest.param(BackoffEntry(300, 0), 601, 601, 0, id="ten-minutes-healthy-resets"),
    ],
)
def test_remaining_delay(
    entry: BackoffEntry | None, finished_at: float, now: float, delay: float
) -> None:
    assert remaining_delay(entry, finished_at, now, UPSTREAM) == delay


@pytest.mark.parametrize(
    ("entry", "event_time", "backoff"),
    [
        pytest.param(None, 0, 10, id="starts-at-initial"),
        pytest.param(BackoffEntry(10, 0), 5, 20, id="doubles"),
        pytest.param(BackoffEntry(160, 0), 5, 300, id="capped"),
        pytest.param(BackoffEntry(300, 0), 700, 10, id="expired-starts-over"),
    ],
)
def test_after_restart(entry: BackoffEntry | None, event_time: float, backoff: float) -> None:
    assert after_restart(entry, event_time, 1000, UPSTREAM) == BackoffEntry(backoff, 1000)
