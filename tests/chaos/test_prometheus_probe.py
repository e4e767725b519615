"""The Prometheus probes against a real Prometheus (Debian's /usr/bin/prometheus) that
scrapes a tiny in-test exporter every second, with one alert rule; then one probe as
the steady-state hypothesis of a stock `chaos run`."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from resilience.chaos import prometheus
from resilience.chaos.prometheus import (
    BoundCheck,
    Sample,
    alert_not_firing,
    alerts_firing,
    check_bounds,
    query_value,
    query_within,
)
from resilience.report.alerts import capture_alerts, read_alerts

PROMETHEUS = Path("/usr/bin/prometheus")
PROMETHEUS_HOST = "127.0.7.40"
EXPORTER_HOST = "127.0.7.41"
CHAOS = Path(sys.executable).with_name("chaos")
ALERT = "HarmonyflowTestValueHigh"
RULES = {
    "groups": [
        {
            "name": "test",
            "interval": "1s",
            "rules": [
                {
                    "alert": ALERT,
                    "expr": "hf_test_value > 10",
                    "for": "0s",
                    "labels": {"severity": "page"},
                }
            ],
        }
    ]
}


# ---- the bound check, by table ----


@pytest.mark.parametrize(
    ("samples", "minimum", "maximum", "empty", "passed", "fragment"),
    [
        pytest.param([0.005], None, 0.01, "fail", True, "within bounds (<= 0.01): 0.005", id="ok"),
        pytest.param([0.01], None, 0.01, "fail", True, "0.01", id="maximum-inclusive"),
        pytest.param([0.2], None, 0.01, "fail", False, "1 of 1 sample(s) out", id="above"),
        pytest.param([1.0], 2.0, None, "fail", False, "(>= 2)", id="below-minimum"),
        pytest.param([2.0], 2.0, 3.0, "fail", True, "2 <= value <= 3", id="minimum-inclusive"),
        pytest.param([float("nan")], None, 1.0, "fail", False, "nan", id="nan-is-out"),
        pytest.param([float("inf")], None, 1.0, "fail", False, "inf", id="inf-is-out"),
        pytest.param([5.0], None, None, "fail", True, "no bound", id="no-bound-needs-a-sample"),
        pytest.param([], None, 1.0, "fail", False, "no sample (empty=fail)", id="empty-fails"),
        pytest.param([], None, 1.0, "pass", True, "no sample (empty=pass)", id="empty-passes"),
        pytest.param([0.1, 0.5, 0.2], None, 0.3, "fail", False, "1 of 3", id="one-of-vector"),
    ],
)
def test_check_bounds(
    samples: list[float],
    minimum: float | None,
    maximum: float | None,
    empty: str,
    passed: bool,
    fragment: str,
) -> None:
    verdict = check_bounds(
        [Sample((("pod", f"p{i}"),), v) for i, v in enumerate(samples)], minimum, maximum, empty
    )
    assert verdict.passed is passed
    assert fragment in verdict.observed, verdict.observed


def test_an_out_of_bounds_sample_is_named_with_its_labels() -> None:
    verdict = check_bounds([Sample((("pod", "a"),), 0.1), Sample((("pod", "b"),), 0.9)], None, 0.5)
    assert verdict == BoundCheck(False, '1 of 2 sample(s) out of bounds (<= 0.5): 0.9 {pod="b"}')


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"resultType": "scalar", "result": [1, "2"]}, [2.0], id="scalar"),
        pytest.param(
            {"resultType": "vector", "result": [{"metric": {}, "value": [1, "+Inf"]}]},
            [float("inf")],
            id="vector",
        ),
        pytest.param({"resultType": "vector", "result": []}, [], id="empty-vector"),
    ],
)
def test_samples_of(data: dict[str, object], expected: list[float]) -> None:
    assert [s.value for s in prometheus.samples_of(data)] == expected


@pytest.mark.parametrize("kind", ["matrix", "string"])
def test_samples_of_refuses_what_is_not_a_number(kind: str) -> None:
    with pytest.raises(ValueError, match=f"a {kind} result is not a number"):
        prometheus.samples_of({"resultType": kind, "result": []})


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        pytest.param(None, None, ["A", "C"], id="every-firing"),
        pytest.param("B", None, [], id="pending-is-not-firing"),
        pytest.param(None, {"severity": "page"}, ["A"], id="by-label"),
    ],
)
def test_firing_alerts(
    name: str | None, labels: dict[str, str] | None, expected: list[str]
) -> None:
    alerts = [
        {"labels": {"alertname": "A", "severity": "page"}, "state": "firing"},
        {"labels": {"alertname": "B", "severity": "page"}, "state": "pending"},
        {"labels": {"alertname": "C", "severity": "ticket"}, "state": "firing"},
    ]
    found = prometheus.firing_alerts(alerts, name, labels)
    assert [a["labels"]["alertname"] for a in found] == expected


def test_without_a_url_the_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    with pytest.raises(ActivityFailed, match="PROMETHEUS_URL"):
        query_within("up", maximum=1)


@pytest.mark.parametrize("url", ["127.0.0.1:9090", "ftp://127.0.0.1/", "http://"])
def test_a_url_that_is_not_http_is_named(url: str) -> None:
    with pytest.raises(ActivityFailed, match="is not an http"):
        query_within("up", maximum=1, url=url)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ActivityFailed, match="empty: expected 'fail' or 'pass', got 'maybe'"):
        query_within("up", empty="maybe", url="http://127.0.0.1:9")
    with pytest.raises(ActivityFailed, match="minimum 2 is above maximum 1"):
        query_within("up", minimum=2, maximum=1, url="http://127.0.0.1:9")


# ---- a real Prometheus ----


class Exporter(ThreadingHTTPServer):
    """GET anything: the gauges in the text format; POST /set {"name": value}: set one."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _ExporterHandler)
        self.values: dict[str, float] = {
            "hf_test_value": 1.0,
            'hf_test_latency{pod="a"}': 0.1,
            'hf_test_latency{pod="b"}': 0.2,
        }


class _ExporterHandler(BaseHTTPRequestHandler):
    server: Exporter

    def do_GET(self) -> None:
        body = "".join(f"{k} {v}\n" for k, v in dict(self.server.values).items()).encode()
        self._answer(body, "text/plain; version=0.0.4")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        try:  # chaoslib's http provider posts a form unless told JSON
            values = json.loads(body or "{}")
        except ValueError:
            values = {k: float(v) for k, v in urllib.parse.parse_qsl(body)}
        self.server.values.update({k: float(v) for k, v in values.items()})
        self._answer(b"{}", "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class Stack:
    url: str
    exporter: Exporter
    exporter_url: str

    def set(self, **values: float) -> None:
        self.exporter.values.update(values)

    def wait_for(self, query: str, value: float, timeout: float = 20.0) -> None:
        """Until Prometheus has scraped `value` for `query` (its first sample)."""
        deadline = time.monotonic() + timeout
        seen: list[float] = []
        while time.monotonic() < deadline:
            seen = [s.value for s in prometheus.instant_query(query, 2.0, self.url)]
            if seen[:1] == [value]:
                return
            time.sleep(0.2)
        pytest.fail(f"Prometheus did not see {query} = {value} within {timeout}s (saw {seen})")


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"not within {timeout}s: {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not PROMETHEUS.exists():
        pytest.fail("/usr/bin/prometheus is not installed (make setup installs Debian's)")
    root = tmp_path_factory.mktemp("prometheus")
    exporter = Exporter((EXPORTER_HOST, 0))
    serving = threading.Thread(target=exporter.serve_forever, name="exporter", daemon=True)
    serving.start()
    exporter_address = f"{EXPORTER_HOST}:{exporter.server_address[1]}"
    (root / "rules.yml").write_text(yaml.safe_dump(RULES))
    (root / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(root / "rules.yml")],
                "scrape_configs": [
                    {"job_name": "exporter", "static_configs": [{"targets": [exporter_address]}]}
                ],
            }
        )
    )
    port = free_port(PROMETHEUS_HOST)
    log = (root / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={PROMETHEUS_HOST}:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://{PROMETHEUS_HOST}:{port}"
    try:
        eventually(lambda: _ready(url) or process.poll() is not None, 30, "Prometheus ready")
        assert process.poll() is None, (root / "prometheus.log").read_text()[-2000:]
        stack = Stack(url, exporter, f"http://{exporter_address}")
        stack.wait_for("hf_test_value", 1.0)
        yield stack
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        exporter.shutdown()
        exporter.server_close()
        serving.join(5)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_a_healthy_value_passes(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    stack.set(hf_test_value=0.005)
    stack.wait_for("hf_test_value", 0.005)
    with caplog.at_level(logging.INFO, logger="chaostoolkit"):
        assert query_within("hf_test_value", maximum=0.01, url=stack.url) is True
    assert "0.005" in caplog.text
    assert query_value("hf_test_value", url=stack.url) == 0.005


def test_a_value_out_of_bounds_fails_naming_it(
    stack: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.set(hf_test_value=0.2)
    stack.wait_for("hf_test_value", 0.2)
    monkeypatch.setenv("PROMETHEUS_URL", stack.url)  # the way an experiment finds it
    with caplog.at_level(logging.INFO, logger="chaostoolkit"):
        assert query_within("hf_test_value", maximum=0.01) is False
        assert query_within("scalar(hf_test_value)", minimum=0.5) is False
    assert "out of bounds (<= 0.01): 0.2" in caplog.text
    assert "out of bounds (>= 0.5): 0.2" in caplog.text


def test_every_sample_of_a_vector_counts(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    assert query_within("hf_test_latency", maximum=0.5, url=stack.url) is True
    with caplog.at_level(logging.INFO, logger="chaostoolkit"):
        assert query_within("hf_test_latency", maximum=0.15, url=stack.url) is False
    assert '0.2 {__name__="hf_test_latency"' in caplog.text and 'pod="b"' in caplog.text
    with pytest.raises(ActivityFailed, match="answered 2 samples, expected exactly one"):
        query_value("hf_test_latency", url=stack.url)
    assert query_value("max(hf_test_latency)", url=stack.url) == 0.2


def test_an_empty_answer(stack: Stack) -> None:
    assert query_within("hf_no_such_metric", maximum=1, url=stack.url) is False
    assert query_within("hf_no_such_metric", maximum=1, empty="pass", url=stack.url) is True
    with pytest.raises(ActivityFailed, match="answered 0 samples"):
        query_value("hf_no_such_metric", url=stack.url)


def test_a_malformed_query_quotes_the_parse_error(stack: Stack) -> None:
    with pytest.raises(ActivityFailed) as failed:
        query_within("sum(rate(hf_test_value[1m])", maximum=1, url=stack.url)
    message = str(failed.value)
    assert "'sum(rate(hf_test_value[1m])'" in message
    assert "bad_data" in message and "parse error" in message
    assert "\n" not in message


def test_a_range_vector_is_refused_with_a_hint(stack: Stack) -> None:
    with pytest.raises(ActivityFailed, match=r"a range selector needs a function"):
        query_within("hf_test_value[10s]", maximum=1, url=stack.url)


def test_not_prometheus_is_named(stack: Stack) -> None:
    with pytest.raises(ActivityFailed, match=r"did not answer JSON \(is it Prometheus\?\)"):
        query_within("up", maximum=1, url=stack.exporter_url)


def test_alerts_firing_and_not(stack: Stack, tmp_path: Path) -> None:
    began = time.time()
    stack.set(hf_test_value=0.005)
    stack.wait_for("hf_test_value", 0.005)
    eventually(lambda: alert_not_firing(ALERT, url=stack.url), 20, f"{ALERT} not firing")
    assert alerts_firing(url=stack.url) == []
    stack.set(hf_test_value=50.0)
    eventually(lambda: alerts_firing(url=stack.url) == [ALERT], 20, f"{ALERT} firing")
    assert alert_not_firing(ALERT, url=stack.url) is False
    assert alert_not_firing("SomethingElse", url=stack.url) is True
    assert alerts_firing(labels={"severity": "page"}, url=stack.url) == [ALERT]
    assert alerts_firing(labels={"severity": "ticket"}, url=stack.url) == []
    stack.set(hf_test_value=0.005)
    eventually(lambda: alert_not_firing(ALERT, url=stack.url), 20, f"{ALERT} resolved")
    # what a game day stores at its end: the firing alerts over the run, from ALERTS
    capture_alerts(tmp_path, stack.url, began, time.time())
    capture = read_alerts(tmp_path)
    assert capture.collected, capture.note
    [series] = capture.series
    assert series.name == ALERT and ("severity", "page") in series.labels
    [(start, end)] = series.spans()
    assert began < start < end <= time.time() + 1


def test_a_closed_port_is_unreachable_at_once() -> None:
    port = free_port(PROMETHEUS_HOST)
    began = time.monotonic()
    with pytest.raises(ActivityFailed, match=f"Prometheus at http://{PROMETHEUS_HOST}:{port} is"):
        query_within("up", maximum=1, timeout=2.0, url=f"http://{PROMETHEUS_HOST}:{port}")
    assert time.monotonic() - began < 2.0 + 1.0


def test_a_prometheus_that_never_answers_fails_within_the_timeout() -> None:
    """A listening socket that never accepts: the connection is made, no answer comes."""
    with socket.socket() as silent:
        silent.bind((PROMETHEUS_HOST, 0))
        silent.listen(8)
        url = f"http://{PROMETHEUS_HOST}:{silent.getsockname()[1]}"
        for probe in (
            lambda: query_within("up", maximum=1, timeout=1.0, url=url),
            lambda: alerts_firing(timeout=1.0, url=url),
        ):
            began = time.monotonic()
            with pytest.raises(ActivityFailed, match=f"Prometheus at {url} is unreachable: "):
                probe()
            assert time.monotonic() - began < 1.0 + 1.5


def test_a_stopped_prometheus_is_unreachable(tmp_path: Path) -> None:
    """Started, then stopped: the probe names the URL and does not wait past its timeout."""
    port = free_port(PROMETHEUS_HOST)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {}}))
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={PROMETHEUS_HOST}:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://{PROMETHEUS_HOST}:{port}"
    try:
        eventually(lambda: _ready(url), 30, "the second Prometheus ready")
        assert query_within("vector(1)", maximum=1, url=url) is True
    finally:
        process.terminate()
        process.wait(15)
    began = time.monotonic()
    with pytest.raises(ActivityFailed, match=f"Prometheus at {url} is unreachable"):
        query_within("vector(1)", maximum=1, timeout=3.0, url=url)
    assert time.monotonic() - began < 3.0 + 1.0


# ---- through the real Chaos Toolkit ----


def experiment(exporter_url: str) -> dict[str, object]:
    """Hypothesis: hf_test_value <= 0.01. Method: the exporter reports 0.5 (the fault)."""
    return {
        "title": "the value stays low",
        "description": "a Prometheus probe as the steady-state hypothesis",
        "steady-state-hypothesis": {
            "title": "hf_test_value within bounds",
            "probes": [
                {
                    "type": "probe",
                    "name": "value-below-1-percent",
                    "tolerance": True,
                    "provider": {
                        "type": "python",
                        "module": "resilience.chaos.prometheus",
                        "func": "query_within",
                        "arguments": {"query": "hf_test_value", "maximum": 0.01, "timeout": 5},
                    },
                }
            ],
        },
        "method": [
            {
                "type": "action",
                "name": "raise-the-value",
                "provider": {
                    "type": "http",
                    "url": f"{exporter_url}/set",
                    "method": "POST",
                    "arguments": {"hf_test_value": 0.5},
                    "timeout": 5,
                },
                "pauses": {"after": 4},
            }
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "lower-the-value",
                "provider": {
                    "type": "http",
                    "url": f"{exporter_url}/set",
                    "method": "POST",
                    "arguments": {"hf_test_value": 0.005},
                    "timeout": 5,
                },
            }
        ],
    }


def test_a_failing_probe_makes_a_chaos_run_deviate(stack: Stack, tmp_path: Path) -> None:
    stack.set(hf_test_value=0.005)
    stack.wait_for("hf_test_value", 0.005)
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment(stack.exporter_url)))
    journal_path = tmp_path / "journal.json"
    done = subprocess.run(
        [
            str(CHAOS),
            "--no-version-check",
            "--no-log-file",
            "run",
            "--journal-path",
            str(journal_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PROMETHEUS_URL": stack.url},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    journal = json.loads(journal_path.read_text())
    before, after = journal["steady_states"]["before"], journal["steady_states"]["after"]
    assert before["steady_state_met"] is True, done.stderr[-2000:]
    assert before["probes"][0]["output"] is True
    assert after["steady_state_met"] is False
    assert after["probes"][0]["output"] is False and after["probes"][0]["tolerance_met"] is False
    assert journal["deviated"] is True and journal["status"] == "completed"
    assert done.returncode == 1
    assert "out of bounds (<= 0.01): 0.5" in done.stdout + done.stderr
    assert stack.exporter.values["hf_test_value"] == 0.005, "the rollback ran"
