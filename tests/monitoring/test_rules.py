"""deploy/monitoring: the rules pass promtool (syntax and unit tests), a broken copy fails
with its file and error named, Alertmanager's configuration passes amtool, and the
kustomization renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.builders import REPO_ROOT

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yaml"))
UNIT_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"
ALERTS = (
    "SessionStateHighErrorRate",
    "SessionStateHighLatencyP99",
    "SessionStateBelowDisruptionBudget",
    "SessionStateTooFewReadyPods",
    "SessionStateHpaAtMax",
    "DatabaseReplicaLagHigh",
    "SessionStateOutboxBacklog",
)


def run(*argv: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def alert_rules() -> list[dict[str, object]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_the_rules_pass_promtool_check() -> None:
    assert RULES, "no rule files in deploy/monitoring/rules"
    done = run(PROMTOOL, "check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/monitoring/tests"
    done = run(PROMTOOL, "test", "rules", *map(str, UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_healthy_unit_test() -> None:
    """Each alert can fail and can pass: a test expecting it, and one expecting silence."""
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {str(rule["alert"]) for rule in alert_rules()}
    assert names == set(ALERTS)
    assert names - firing == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_says_how_bad_what_and_where_to_look(alert: str) -> None:
    [rule] = [r for r in alert_rules() if r["alert"] == alert]
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    assert isinstance(labels, dict) and labels.get("severity") in ("critical", "warning")
    assert isinstance(annotations, dict)
    assert {"summary", "description", "runbook"} <= set(annotations)
    assert rule.get("for"), f"{alert} has no `for:` and would fire on one bad scrape"


def test_a_broken_copy_of_the_rules_fails_with_its_file_and_error_named(tmp_path: Path) -> None:
    """Twin: bad PromQL in an alert is caught before it reaches a Prometheus."""
    broken = tmp_path / "broken-rules.yaml"
    text = RULES[0].read_text()
    assert "pg_replication_lag_seconds > 5" in text
    broken.write_text(
        text.replace("pg_replication_lag_seconds > 5", "pg_replication_lag_seconds >")
    )
    done = run(PROMTOOL, "check", "rules", str(broken))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert str(broken) in output and "FAILED" in output
    assert "parse error" in output, output


def test_the_unit_tests_catch_a_rule_that_never_fires(tmp_path: Path) -> None:
    """Twin: a threshold typed wrong (5 % -> 50 %) fails the unit tests, naming the alert."""
    (tmp_path / "rules").mkdir()
    shutil.copytree(MONITORING / "tests", tmp_path / "tests")
    text = RULES[0].read_text()
    assert "namespace:session_state_http_error_ratio:rate1m > 0.05" in text
    (tmp_path / "rules" / RULES[0].name).write_text(
        text.replace(
            "namespace:session_state_http_error_ratio:rate1m > 0.05",
            "namespace:session_state_http_error_ratio:rate1m > 0.5",
        )
    )
    done = run(PROMTOOL, "test", "rules", *(str(tmp_path / "tests" / p.name) for p in UNIT_TESTS))
    assert done.returncode != 0
    assert "SessionStateHighErrorRate" in done.stdout + done.stderr


def test_alertmanager_config_passes_amtool() -> None:
    done = run(AMTOOL, "check-config", str(MONITORING / "alertmanager.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_alertmanager_config_routes_like_the_seed_and_holds_no_secret() -> None:
    config = yaml.safe_load((MONITORING / "alertmanager.yaml").read_text())
    kinds = {key for receiver in config["receivers"] for key in receiver if key != "name"}
    assert kinds == {"slack_configs", "pagerduty_configs", "email_configs"}
    text = (MONITORING / "alertmanager.yaml").read_text()
    for secret_key in ("api_url:", "routing_key:", "service_key:", "smtp_auth_password:"):
        assert secret_key not in text, f"{secret_key} must be a *_file reference"
    assert "hooks.slack.com" not in text


def test_a_broken_alertmanager_config_fails_amtool(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yaml"
    text = (MONITORING / "alertmanager.yaml").read_text()
    broken.write_text(text.replace("receiver: email-team", "receiver: email-nobody"))
    done = run(AMTOOL, "check-config", str(broken))
    assert done.returncode != 0
    assert "email-nobody" in done.stdout + done.stderr


def test_the_kustomization_packages_rules_dashboard_and_alertmanager() -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed (make setup installs it)")
    done = run("kubectl", "kustomize", str(MONITORING))
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    by_name = {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in documents}
    assert set(by_name) == {
        "session-state-prometheus-rules",
        "session-state-grafana-dashboard",
        "alertmanager-config",
    }
    rules = by_name["session-state-prometheus-rules"]["data"]["session-state.yaml"]
    assert rules == (MONITORING / "rules" / "session-state.yaml").read_text()
    assert all(d["metadata"]["namespace"] == "monitoring" for d in documents)
