"""The outbox-drained probe judges the age of what waits, not its count: under live
traffic a few events are always pending, and a backlog is as old as the outage."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from resilience.chaos import broker_probes


def answering(oldest: float, pending: float) -> Any:
    def query_value(query: str, configuration: Any = None) -> float:
        return oldest if query == broker_probes.OUTBOX_OLDEST else pending

    return query_value


@pytest.mark.parametrize(
    ("oldest", "pending", "drained"),
    [
        pytest.param(0.0, 0.0, True, id="empty"),
        pytest.param(0.8, 6.0, True, id="live-traffic-in-flight"),
        pytest.param(5.0, 3.0, True, id="at-the-lag"),
        pytest.param(42.0, 75.0, False, id="the-outage-backlog"),
    ],
)
def test_drained_means_nothing_older_than_the_lag(
    monkeypatch: pytest.MonkeyPatch, oldest: float, pending: float, drained: bool
) -> None:
    monkeypatch.setattr(broker_probes, "query_value", answering(oldest, pending))
    if drained:
        assert broker_probes.outbox_drained_seconds(timeout=1) < 1
    else:
        with pytest.raises(ActivityFailed, match=r"75 events pending, the oldest 42\.0 s old"):
            broker_probes.outbox_drained_seconds(timeout=0.3)
