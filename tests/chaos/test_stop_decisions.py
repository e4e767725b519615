"""The pure decisions of the stop conditions and the dead-man switch, by tables."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from resilience.chaos.controls import dead_man, stop_conditions
from resilience.chaos.runner import with_safeguards
from resilience.chaos.verdict import failures


def alert(name: str, state: str = "firing") -> dict[str, Any]:
    return {"labels": {"alertname": name}, "state": state}


@pytest.mark.parametrize(
    ("alerts", "wanted", "met"),
    [
        ([], ["A"], []),
        ([alert("A")], ["A"], ["A"]),
        ([alert("A", "pending")], ["A"], []),  # pending is not firing yet
        ([alert("B")], ["A"], []),  # only the named ones stop the run
        ([alert("B"), alert("A")], ["A", "B"], ["A", "B"]),  # in the order named
        ([alert("A"), alert("A")], ["A"], ["A"]),  # one alert, many series: once
        ([{"state": "firing"}], ["A"], []),
    ],
)
def test_alerts_met(alerts: list[dict[str, Any]], wanted: list[str], met: list[str]) -> None:
    assert stop_conditions.alerts_met(alerts, wanted) == met


@pytest.mark.parametrize(
    ("alarms", "wanted", "met"),
    [
        ([{"AlarmName": "x", "StateValue": "ALARM"}], ["x"], ["x"]),
        ([{"AlarmName": "x", "StateValue": "INSUFFICIENT_DATA"}], ["x"], []),
        ([{"AlarmName": "x", "StateValue": "OK"}], ["x"], []),
        ([{"AlarmName": "y", "StateValue": "ALARM"}], ["x"], []),
    ],
)
def test_alarms_met(alarms: list[dict[str, Any]], wanted: list[str], met: list[str]) -> None:
    assert stop_conditions.alarms_met({"MetricAlarms": alarms}, wanted) == met


@pytest.mark.parametrize(
    ("arguments", "configuration", "env", "url"),
    [
        ({"alerts": ["A"]}, {}, {}, None),  # not configured: watched by nobody, said once
        ({"alerts": ["A"]}, {}, {"PROMETHEUS_URL": "http://e/"}, "http://e"),
        (
            {"alerts": ["A"]},
            {"prometheus_url": "http://c"},
            {"PROMETHEUS_URL": "http://e"},
            "http://c",
        ),
        ({"prometheus_url": "http://a"}, {"prometheus_url": "http://c"}, {}, "http://a"),
    ],
)
def test_where_prometheus_is(
    arguments: dict[str, Any], configuration: dict[str, Any], env: dict[str, str], url: str | None
) -> None:
    assert stop_conditions.conditions_from(arguments, configuration, env).prometheus_url == url


@pytest.mark.parametrize("arguments", [{"alerts": "A"}, {"interval": 0}, {"timeout": -1}])
def test_bad_arguments(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="stop conditions"):
        stop_conditions.conditions_from(arguments, {}, {})


def test_prometheus_not_configured_is_said_once_and_does_not_block(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        stop_conditions.before_experiment_control({}, configuration={}, alerts=["A"])
        stop_conditions.before_method_control({})
        stop_conditions.after_method_control({})
    journal: dict[str, Any] = {}
    stop_conditions.after_experiment_control({}, state=journal)
    warnings = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert journal == {"stop_condition": {"unwatched": "Prometheus not configured: A not watched"}}


# ---- the dead-man switch: when it fires, given when each target last answered ----


@pytest.mark.parametrize(
    ("answers", "now", "bound", "fired"),
    [
        ({"k": []}, 2.0, 5.0, None),  # never answered, but the watch is young
        ({"k": []}, 6.0, 5.0, ("k", 6.0)),  # never answered since the start
        ({"k": [1.0, 2.0, 3.0]}, 7.0, 5.0, None),  # silent 4 s of 5
        ({"k": [1.0, 2.0]}, 7.5, 5.0, ("k", 5.5)),  # silent 5.5 s of 5
        ({"k": [2.0]}, 7.0, 5.0, None),  # exactly the bound: not yet
        ({"k": [9.0], "aws": [1.0]}, 9.0, 5.0, ("aws", 8.0)),  # any target lost fires
        ({"k": [1.0], "aws": [1.0]}, 9.0, 5.0, ("k", 8.0)),  # the first in order is named
        ({"k": [12.0]}, 9.0, 5.0, ("k", 9.0)),  # an answer from the future does not count
    ],
)
def test_when_the_dead_man_fires(
    answers: dict[str, list[float]], now: float, bound: float, fired: tuple[str, float] | None
) -> None:
    lost = dead_man.fires(answers, started=0.0, now=now, bound=bound)
    assert (None if lost is None else (lost.target, lost.silent_seconds)) == fired


ZONES = {"provider": {"module": "resilience.chaos.zones"}}
PROM_PROBE = {"provider": {"module": "resilience.chaos.prometheus"}}
STOPS = {"provider": {"module": "resilience.chaos.controls.stop_conditions"}}


@pytest.mark.parametrize(
    ("experiment", "env", "names"),
    [
        ({"method": []}, {"PROMETHEUS_URL": "http://p"}, ["Kubernetes API"]),
        ({"method": [ZONES]}, {}, ["Kubernetes API", "AWS endpoint"]),
        ({"rollbacks": [ZONES]}, {}, ["Kubernetes API", "AWS endpoint"]),
        ({"controls": [STOPS]}, {}, ["Kubernetes API"]),  # Prometheus not configured
        ({"controls": [STOPS]}, {"PROMETHEUS_URL": "http://p"}, ["Kubernetes API", "Prometheus"]),
        (
            {"steady-state-hypothesis": {"probes": [PROM_PROBE]}},
            {"PROMETHEUS_URL": "http://p"},
            ["Kubernetes API", "Prometheus"],
        ),
    ],
)
def test_what_the_dead_man_watches(
    experiment: dict[str, Any], env: dict[str, str], names: list[str]
) -> None:
    assert [w.name for w in dead_man.watched(experiment, {}, env, "https://k")] == names


def test_aws_endpoint_is_the_sandbox_s_or_the_region_s() -> None:
    experiment = {"method": [ZONES]}
    sandbox = dead_man.watched(experiment, {}, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5"}, "k")
    staging = dead_man.watched(experiment, {"aws_region": "eu-west-1"}, {}, "k")
    assert sandbox[1].url == "http://127.0.0.1:5"
    assert staging[1].url == "https://sts.eu-west-1.amazonaws.com/"


# ---- the runner adds them; the verdict names them ----

DM = "resilience.chaos.controls.dead_man"
SC = "resilience.chaos.controls.stop_conditions"


def modules(experiment: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (c["provider"]["module"], c["provider"].get("arguments", {}))
        for c in experiment["controls"]
    ]


@pytest.mark.parametrize(
    ("controls", "seconds", "alerts", "expected"),
    [
        ([], 30, (), [(DM, {"seconds": 30})]),
        ([], 0, (), []),  # 0: off
        (
            [{"name": "d", "provider": {"module": DM, "arguments": {"seconds": 9, "interval": 2}}}],
            5,
            (),
            [(DM, {"seconds": 5, "interval": 2})],
        ),  # the runner's bound wins
        ([{"name": "d", "provider": {"module": DM}}], 0, (), []),
        ([], 0, ("A",), [(SC, {"alerts": ["A"]})]),
        (
            [
                {
                    "name": "s",
                    "provider": {"module": SC, "arguments": {"alerts": ["A"], "interval": 1}},
                }
            ],
            0,
            ("B", "A"),
            [(SC, {"alerts": ["A", "B"], "interval": 1})],
        ),
    ],
)
def test_with_safeguards(
    controls: list[dict[str, Any]], seconds: float, alerts: tuple[str, ...], expected: list[Any]
) -> None:
    assert modules(with_safeguards({"controls": controls}, seconds, alerts)) == expected


def journal(**extra: Any) -> dict[str, Any]:
    return {
        "status": "interrupted",
        "run": [],
        "rollbacks": [{"activity": {"name": "uncordon"}, "status": "succeeded"}],
        "steady_states": {"before": None, "during": [], "after": None},
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"stop_condition": {"triggered_by": "alert A firing"}},
            ["run interrupted", "stop condition stopped the method: alert A firing"],
        ),
        (
            {
                "dead_man": {
                    "triggered_by": "lost sight of the Kubernetes API for 5.0 s (bound 4 s)",
                    "targets_back": True,
                }
            },
            [
                "run interrupted",
                "dead-man switch stopped the method:"
                " lost sight of the Kubernetes API for 5.0 s (bound 4 s)",
            ],
        ),
        (
            {"dead_man": {"triggered_by": "lost sight of the AWS endpoint", "targets_back": False}},
            [
                "run interrupted",
                "dead-man switch stopped the method: lost sight of the AWS endpoint"
                " (still silent at the rollbacks)",
            ],
        ),
        (
            {
                "stop_condition": {
                    "refused": "stop condition already met before the method: alert A firing"
                }
            },
            ["refused to start: stop condition already met before the method: alert A firing"],
        ),
    ],
)
def test_the_verdict_names_what_stopped_the_run(extra: dict[str, Any], expected: list[str]) -> None:
    assert failures(journal(**extra)) == expected
