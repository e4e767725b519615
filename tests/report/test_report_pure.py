"""Table tests of the report's pure decisions: score, trends, windows, findings, scrubbing."""

from __future__ import annotations

import doctest
import importlib

import pytest

from resilience.load.requests import parse_lines
from resilience.observe.records import ContainerObservation, PodObservation
from resilience.observe.timeline import State
from resilience.report import findings, scrub, series, windows
from resilience.report.score import StepScore, component, score
from resilience.report.trends import compare
from resilience.report.windows import Span

MODULES = [
    "resilience.report.score",
    "resilience.report.trends",
    "resilience.report.windows",
    "resilience.report.findings",
    "resilience.report.series",
    "resilience.report.scrub",
    "resilience.report.junit",
    "resilience.report.notify",
    "resilience.report.build",
    "resilience.gameday.plan",
    "resilience.gameday.steady",
    "resilience.gameday.steps",
    "resilience.gameday.progress",
    "resilience.gameday.run",
    "resilience.gameday.manifests",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    assert doctest.testmod(importlib.import_module(name)).failed == 0


def step(passed: bool = True, e: float | None = 0.0, r: float | None = 0.0) -> StepScore:
    return StepScore(passed, e, 0.05, r, 100.0)


@pytest.mark.parametrize(
    ("name", "step_score", "expected"),
    [
        ("perfect", step(), 1.0),
        ("failed verdict only", step(passed=False), 0.5),
        ("half the error budget", step(e=0.025), 0.85),
        ("error budget blown", step(e=0.5), 0.7),
        ("recovery at the budget", step(r=100.0), 0.8),
        ("recovery halfway", step(r=50.0), 0.9),
        ("never recovered", step(r=None), 0.8),
        ("did not run", step(passed=False, e=None, r=None), 0.0),
        ("negative recovery clamps", step(r=-3.0), 1.0),
    ],
)
def test_score_component(name: str, step_score: StepScore, expected: float) -> None:
    assert component(step_score) == pytest.approx(expected), name


@pytest.mark.parametrize(
    ("name", "steps", "expected"),
    [
        ("no step", [], None),
        ("all perfect", [step(), step()], 100),
        ("one not run of two", [step(), step(False, None, None)], 50),
        ("rounding", [step(r=50.0), step(), step()], 97),
    ],
)
def test_score(name: str, steps: list[StepScore], expected: int | None) -> None:
    assert score(steps) == expected, name


def run(run_id: str, value: int | None, **ttr: float | None) -> dict[str, object]:
    return {
        "run_id": run_id,
        "score": value,
        "steps": [{"name": k.replace("_", "-"), "time_to_recovery_s": v} for k, v in ttr.items()],
    }


@pytest.mark.parametrize(
    ("name", "current", "previous", "delta", "steps"),
    [
        (
            "better",
            run("b", 90, pod_kill=5.0),
            run("a", 80, pod_kill=9.0),
            10,
            [("pod-kill", -4.0)],
        ),
        (
            "worse",
            run("b", 60, pod_kill=12.0),
            run("a", 80, pod_kill=9.0),
            -20,
            [("pod-kill", 3.0)],
        ),
        (
            "new step",
            run("b", 80, pod_kill=5.0, az_drain=30.0),
            run("a", 80, pod_kill=5.0),
            0,
            [("pod-kill", 0.0)],
        ),
        (
            "never recovered",
            run("b", 40, pod_kill=None),
            run("a", 80, pod_kill=9.0),
            -40,
            [("pod-kill", None)],
        ),
        ("no score", run("b", None), run("a", 80), None, []),
    ],
)
def test_trend(
    name: str,
    current: dict[str, object],
    previous: dict[str, object],
    delta: int | None,
    steps: list[tuple[str, float | None]],
) -> None:
    trend = compare(current, previous)
    assert trend.score_delta == delta, name
    assert [(s.name, s.delta_s) for s in trend.steps] == steps, name


@pytest.mark.parametrize(
    ("name", "spans", "expected"),
    [
        ("one step", [(10.0, 20.0)], [((0.0, 10.0), (10.0, 20.0), (20.0, 100.0))]),
        (
            "gap split in half",
            [(10.0, 20.0), (40.0, 50.0)],
            [
                ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0)),
                ((30.0, 40.0), (40.0, 50.0), (50.0, 100.0)),
            ],
        ),
        (
            "back to back",
            [(10.0, 20.0), (20.0, 30.0)],
            [
                ((0.0, 10.0), (10.0, 20.0), (20.0, 20.0)),
                ((20.0, 20.0), (20.0, 30.0), (30.0, 100.0)),
            ],
        ),
        ("no step", [], []),
    ],
)
def test_step_windows(name: str, spans: list[Span], expected: list[object]) -> None:
    got = [(w.baseline, w.fault, w.recovery) for w in windows.step_windows(spans, 0.0, 100.0)]
    assert got == expected, name


def test_step_stats_count_only_the_steps_own_seconds() -> None:
    timeline = parse_lines(
        [
            '{"kind":"requests","t":5,"type":"GET","name":"/a","ok":5,"fail":0}',
            '{"kind":"requests","t":12,"type":"GET","name":"/a","ok":3,"fail":2}',
            '{"kind":"requests","t":25,"type":"GET","name":"/a","ok":4,"fail":0}',
            '{"kind":"requests","t":60,"type":"GET","name":"/a","ok":9,"fail":9}',
        ]
    )
    [first, _] = windows.step_windows([(10.0, 20.0), (40.0, 50.0)], 0.0, 100.0)
    errors = windows.errors_per_window(windows.step_stats(timeline, "kill", first))
    assert {k: (v.requests, v.failures) for k, v in errors.items()} == {
        "baseline": (5, 0),
        "fault": (5, 2),
        "recovery": (4, 0),
    }


def pods(**phases: str) -> dict[str, PodObservation]:
    return {n: PodObservation(n, phase=p) for n, p in phases.items()}


@pytest.mark.parametrize(
    ("name", "timeline", "expected"),
    [
        ("short spell", [(0.0, pods(a="Pending")), (10.0, pods(a="Running"))], []),
        (
            "long spell",
            [(0.0, pods(a="Pending")), (30.0, pods(a="Running"))],
            ["pod a Pending for 30 s (from +0 s): not schedulable while the fault lasted"],
        ),
        (
            "still pending at the end",
            [(50.0, pods(a="Running", b="Pending"))],
            ["pod b Pending for 50 s (from +50 s): not schedulable while the fault lasted"],
        ),
        (
            "deleted while pending",
            [(0.0, pods(a="Pending")), (40.0, {})],
            ["pod a Pending for 40 s (from +0 s): not schedulable while the fault lasted"],
        ),
    ],
)
def test_pending_pods(
    name: str, timeline: list[tuple[float, dict[str, PodObservation]]], expected: list[str]
) -> None:
    states = [State(wall=t, pods=p) for t, p in timeline]
    assert findings.pending_pods(states, 0.0, 100.0, 20.0) == expected, name


def test_restarts_count_only_inside_the_window() -> None:
    def state(t: float, restarts: int) -> State:
        container = ContainerObservation("c", True, restarts, "running", last_reason="Error")
        return State(wall=t, pods={"p": PodObservation("p", containers=(container,))})

    states = [state(1.0, 1), state(5.0, 1), state(6.0, 3), state(20.0, 7)]
    assert findings.restarts(states, 2.0, 10.0) == ["pod p restarted 2 time(s) (last: Error)"]


def test_data_findings_and_top_error() -> None:
    timeline = parse_lines(
        [
            '{"kind":"requests","t":5,"type":"LEDGER","name":"lost write","ok":0,"fail":2}',
            '{"kind":"requests","t":6,"type":"WS","name":"seq gap","ok":0,"fail":1}',
            '{"kind":"requests","t":6,"type":"GET","name":"/a","ok":0,"fail":3,'
            '"errors":{"HTTPError 503":3}}',
            '{"kind":"requests","t":50,"type":"LEDGER","name":"stale read","ok":0,"fail":1}',
        ]
    )
    assert findings.data_findings(timeline, 0.0, 10.0) == ["LEDGER lost write: 2", "WS seq gap: 1"]
    assert findings.top_error(timeline, 0.0, 10.0) == (
        "most frequent error (3x): GET /a: HTTPError 503"
    )
    assert findings.top_error(timeline, 20.0, 30.0) is None


def test_database_writes_are_successful_posts_and_puts() -> None:
    timeline = parse_lines(
        [
            '{"kind":"requests","t":1,"type":"POST","name":"/api/v1/sessions","ok":2,"fail":5}',
            '{"kind":"requests","t":1,"type":"PUT","name":"/api/v1/sessions/[id]","ok":3,"fail":0}',
            '{"kind":"requests","t":1,"type":"GET","name":"/api/v1/sessions/[id]","ok":9,"fail":0}',
            '{"kind":"requests","t":2,"type":"DELETE","name":"/api/v1/sessions/[id]","ok":1}',
        ]
    )
    assert series.db_writes(timeline) == [(1, 5)]


TOKEN = "hf-fake-token-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    ("name", "text", "secrets", "expected"),
    [
        ("known value anywhere", f"x {TOKEN} y", [TOKEN], "x **redacted** y"),
        ("bearer", "Authorization: Bearer abcdefgh1234", [], "Authorization: Bearer **redacted**"),
        ("jwt", "eyJhbGciOiJSUzI1.eyJzdWIiOiJzeXN0.c2lnbmF0dXJlcw", [], "**redacted**"),
        ("aws key id", "key AKIAABCDEFGHIJKLMNOP used", [], "key **redacted** used"),
        ("password pair", "password=hunter22 ok", [], "password=**redacted** ok"),
        (
            "url password",
            "postgres://app:s3cret@db:5432/x",
            [],
            "postgres://app:**redacted**@db:5432/x",
        ),
        ("slack hook", "https://hooks.slack.com/services/T0/B0/xyz", [], "**redacted**"),
        ("short values are left", "token=ab", ["ab"], "token=ab"),
        ("plain text untouched", "pod-kill recovered in 12 s", [], "pod-kill recovered in 12 s"),
    ],
)
def test_scrub_text(name: str, text: str, secrets: list[str], expected: str) -> None:
    assert scrub.scrub_text(text, secrets) == expected, name


def test_scrubbed_json_stays_json() -> None:
    import json  # noqa: PLC0415

    text = json.dumps({"secrets": None, "token_count": 1234, "api_token": "abcdefgh", "x": 1})
    clean = scrub.scrub_text(text, [], json_safe=True)
    assert json.loads(clean) == {
        "secrets": None,
        "token_count": 1234,
        "api_token": "**redacted**",
        "x": 1,
    }


def test_secret_values_come_from_env_names_and_kubeconfig_users() -> None:
    kubeconfig = {
        "users": [
            {
                "name": "me",
                "user": {"token": "kube-token-123", "client-key-data": "LS0tLS1CRUdJTi"},
            },
            {
                "name": "exec",
                "user": {
                    "exec": {
                        "command": "aws",
                        "args": ["eks", "get-token"],
                        "env": [{"name": "AWS_PROFILE", "value": "stg-prof"}],
                    }
                },
            },
        ]
    }
    env = {"SLACK_WEBHOOK_URL": "https://hooks.example/x", "HOME": "/root", "MY_PASSWORD": "pw"}
    assert scrub.secret_values(env, kubeconfig) == sorted(
        ["kube-token-123", "LS0tLS1CRUdJTi", "stg-prof", "https://hooks.example/x"]
    )
