"""The intended alerts: deploy/monitoring/rules/ read into typed rules.

Suites and game days compare what Prometheus did with what the rules say it must
do, so the thresholds and `for:` durations come from the rule files, never from
numbers typed into a test.

    >>> rule = AlertRule("HighErrors", "ratio:rate1m > 0.05", 60.0, {"severity": "critical"})
    >>> rule.threshold()
    Threshold(query='ratio:rate1m', comparison='>', value=0.05)
    >>> prometheus_seconds("1m30s"), prometheus_seconds("30s"), prometheus_seconds("0s")
    (90.0, 30.0, 0.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resilience.errors import InvalidInputError
from resilience.paths import PROJECT_ROOT

RULES_DIR = PROJECT_ROOT / "deploy" / "monitoring" / "rules"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
# `<query> <comparison> <number>` at the top level of an alert expression.
_THRESHOLD = re.compile(r"^(?P<query>.+?)\s*(?P<op>>=|<=|>|<|==|!=)\s*(?P<value>-?[\d.eE+-]+)$")


@dataclass(frozen=True)
class Threshold:
    """An alert expression of the form `query > value`, split into its parts."""

    query: str
    comparison: str
    value: float


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    for_seconds: float
    labels: Mapping[str, str] = field(default_factory=dict)

    def threshold(self) -> Threshold:
        """The query and the bound the alert compares it with; refused when the
        expression is not a single top-level comparison with a number."""
        match = _THRESHOLD.match(" ".join(self.expr.split()))
        if match is None:
            raise InvalidInputError(
                f"alert {self.name}: expression is not `query <op> number`: {self.expr!r}"
            )
        return Threshold(match["query"], match["op"], float(match["value"]))


def prometheus_seconds(text: str) -> float:
    """Seconds of a Prometheus duration (`1m30s`); a malformed one is refused by name."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidInputError(f"not a Prometheus duration: {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_alert_rules(data: Any, where: str) -> dict[str, AlertRule]:
    """The alerting rules of one rule file's content (recording rules are skipped)."""
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise InvalidInputError(f"{where}: not a Prometheus rule file (no `groups` list)")
    rules: dict[str, AlertRule] = {}
    for group in data["groups"]:
        for rule in (group or {}).get("rules") or []:
            if not isinstance(rule, dict) or "alert" not in rule:
                continue
            name = str(rule["alert"])
            if "expr" not in rule:
                raise InvalidInputError(f"{where}: alert {name} has no expr")
            rules[name] = AlertRule(
                name,
                str(rule["expr"]),
                prometheus_seconds(str(rule.get("for", "0s"))),
                {str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
            )
    return rules


def load_alert_rules(directory: Path = RULES_DIR) -> dict[str, AlertRule]:
    """Every alert of the rule files (`*.yaml`) in `directory`, by name."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise InvalidInputError(f"{directory}: no rule files (*.yaml)")
    rules: dict[str, AlertRule] = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise InvalidInputError(f"{path}: not YAML: {error}") from None
        rules.update(parse_alert_rules(data, str(path)))
    return rules


def alert_rule(name: str, directory: Path = RULES_DIR) -> AlertRule:
    """The named alert, refused with the known names when it does not exist."""
    rules = load_alert_rules(directory)
    if name not in rules:
        raise InvalidInputError(f"no alert {name!r} in {directory} (known: {', '.join(rules)})")
    return rules[name]
