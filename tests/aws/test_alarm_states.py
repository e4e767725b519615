"""CloudWatch alarms as the sandbox knows them, for FIS's stop conditions: the Prometheus
alert of the same name (a stand-in Prometheus here; the real one in the live tests)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from sandbox.aws.effects import ControlPlaneEffects
from sandbox.aws.refusal import AwsRefusal
from tests.prometheus_fake import ALERT, FakePrometheus


def effects(monitoring: Any) -> ControlPlaneEffects:
    """Effects on a plane that has only monitoring (alarm states need nothing else, nor
    the loop: they ask Prometheus from the calling thread)."""
    plane: Any = SimpleNamespace(monitoring=monitoring)
    loop = asyncio.new_event_loop()
    loop.close()
    return ControlPlaneEffects(plane, loop)


def test_a_firing_alert_is_an_alarm_and_a_quiet_one_ok(prometheus: FakePrometheus) -> None:
    subject = effects(SimpleNamespace(prometheus_url=prometheus.url))
    assert subject.alarm_state(ALERT) == "OK"
    prometheus.firing = True
    assert subject.alarm_state(ALERT) == "ALARM"


@pytest.mark.parametrize(
    ("monitoring", "alarm", "code", "fragment"),
    [
        pytest.param(
            "fake", "NoSuchAlert", "ResourceNotFoundException", "there is none", id="no-rule"
        ),
        pytest.param(None, ALERT, "InternalFailure", "runs no Prometheus", id="no-prometheus"),
        pytest.param(
            "http://127.0.0.1:9", ALERT, "InternalFailure", "did not answer", id="unreachable"
        ),
    ],
)
def test_an_alarm_nobody_can_read_is_refused(
    prometheus: FakePrometheus, monitoring: str | None, alarm: str, code: str, fragment: str
) -> None:
    url = prometheus.url if monitoring == "fake" else monitoring
    subject = effects(None if url is None else SimpleNamespace(prometheus_url=url))
    with pytest.raises(AwsRefusal) as refused:
        subject.alarm_state(alarm)
    assert refused.value.code == code
    assert fragment in str(refused.value)
