"""The intended alerts read from deploy/monitoring/rules/: parsing, thresholds, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.errors import InvalidInputError
from resilience.slo.alert_rules import (
    AlertRule,
    Threshold,
    alert_rule,
    load_alert_rules,
    parse_alert_rules,
    prometheus_seconds,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0.0), ("30s", 30.0), ("1m", 60.0), ("1m30s", 90.0), ("2h", 7200.0), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert prometheus_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1 minute", "m1", "1x", "30s junk"])
def test_malformed_durations_are_named(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not a Prometheus duration"):
        prometheus_seconds(text)


@pytest.mark.parametrize(
    ("expr", "threshold"),
    [
        ("a:ratio:rate1m > 0.05", Threshold("a:ratio:rate1m", ">", 0.05)),
        ("pg_replication_lag_seconds >= 5", Threshold("pg_replication_lag_seconds", ">=", 5.0)),
        ("sum by (ns) (x)\n  > 100", Threshold("sum by (ns) (x)", ">", 100.0)),
    ],
)
def test_thresholds(expr: str, threshold: Threshold) -> None:
    assert AlertRule("A", expr, 0.0).threshold() == threshold


def test_an_expression_without_a_numeric_bound_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="alert A: expression is not"):
        AlertRule("A", "a < on (ns) b", 0.0).threshold()


def test_bad_rule_files_are_named() -> None:
    with pytest.raises(InvalidInputError, match=r"f\.yaml: not a Prometheus rule file"):
        parse_alert_rules({"rules": []}, "f.yaml")
    with pytest.raises(InvalidInputError, match="alert X has no expr"):
        parse_alert_rules({"groups": [{"rules": [{"alert": "X"}]}]}, "f.yaml")


def test_the_shipped_rules_are_read(tmp_path: Path) -> None:
    rules = load_alert_rules()
    assert rules["SessionStateTooFewReadyPods"].for_seconds > 0
    assert rules["SessionStateHighErrorRate"].threshold().comparison == ">"
    assert "record" not in " ".join(rules)
    with pytest.raises(InvalidInputError, match="no alert 'Nope'"):
        alert_rule("Nope")
    with pytest.raises(InvalidInputError, match="no rule files"):
        load_alert_rules(tmp_path)
