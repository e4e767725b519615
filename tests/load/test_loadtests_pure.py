"""The locustfiles' pure parts (no Locust imported here): ledger verdicts, sequence
counting, shapes' stages, the timeline recorder; and the rule that loadtests/ stays
free of the sandbox and of this suite."""

from __future__ import annotations

import ast
import doctest

import pytest
from harmonyflow import buckets, ledger, recorder, sequence, stages
from harmonyflow.buckets import bucket_ms
from harmonyflow.ledger import (
    LOST_SESSION,
    LOST_WRITE,
    RESURRECTED,
    STALE_READ,
    Expected,
    Ledger,
    judge_read,
)
from harmonyflow.recorder import TimelineRecorder
from harmonyflow.sequence import SequenceTracker, Step, classify
from harmonyflow.stages import SHAPES, ShapeParams, Stage, build_stages, stage_at

from tests.load.locustrun import LOADTESTS

V3 = Expected(3, {"n": 3})


@pytest.mark.parametrize(
    ("expected", "status", "version", "state", "finding"),
    [
        pytest.param(None, 200, 1, {}, None, id="not-ours"),
        pytest.param(V3, 200, 3, {"n": 3}, None, id="as-acknowledged"),
        pytest.param(V3, 200, 2, {"n": 2}, STALE_READ, id="older-version"),
        pytest.param(V3, 200, 3, {"n": 2}, LOST_WRITE, id="same-version-other-data"),
        pytest.param(V3, 200, 4, {"n": 9}, None, id="newer-is-fine"),
        pytest.param(V3, 404, None, None, LOST_SESSION, id="gone"),
        pytest.param(V3, 503, None, None, None, id="failed-request-not-judged"),
        pytest.param(Expected(3, {}, deleted=True), 404, None, None, None, id="deleted-gone"),
        pytest.param(Expected(3, {}, deleted=True), 200, 3, {}, RESURRECTED, id="deleted-back"),
        pytest.param(
            Expected(3, {"n": 3}, uncertain=True), 200, 2, {}, STALE_READ, id="uncertain-older"
        ),
        pytest.param(
            Expected(3, {"n": 3}, uncertain=True), 200, 3, {"x": 1}, None, id="uncertain-same"
        ),
        pytest.param(
            Expected(3, {"n": 3}, uncertain=True), 404, None, None, None, id="uncertain-gone"
        ),
    ],
)
def test_judge_read(
    expected: Expected | None,
    status: int,
    version: int | None,
    state: dict[str, int] | None,
    finding: str | None,
) -> None:
    verdict = judge_read(expected, status, version, state)
    assert (verdict.name if verdict else None) == finding


def test_ledger_settles_an_unanswered_write_with_the_next_read() -> None:
    ledger = Ledger()
    ledger.acknowledged("s", 3, {"n": 3})
    ledger.unanswered("s")
    assert ledger.expected("s") == Expected(3, {"n": 3}, uncertain=True)
    ledger.observed("s", 4, {"n": 4})  # the unanswered write had landed
    assert ledger.expected("s") == Expected(4, {"n": 4})
    ledger.observed("s", 9, {})  # a certain session is not moved by what a read shows
    assert ledger.expected("s") == Expected(4, {"n": 4})
    ledger.deleted("s")
    assert ledger.expected("s") == Expected(4, {}, deleted=True)


@pytest.mark.parametrize(
    ("last", "seq", "step"),
    [
        pytest.param(0, 1, Step(0, False), id="first"),
        pytest.param(4, 5, Step(0, False), id="next"),
        pytest.param(4, 7, Step(2, False), id="gap-of-two"),
        pytest.param(4, 4, Step(0, True), id="repeat"),
        pytest.param(4, 2, Step(0, True), id="older"),
    ],
)
def test_classify(last: int, seq: int, step: Step) -> None:
    assert classify(last, seq) == step


def test_tracker_counts_per_session_and_resumes_from_since() -> None:
    tracker = SequenceTracker()
    tracker.start("a", since=5)
    tracker.start("b", since=0)
    for session, seq in [("a", 6), ("b", 1), ("a", 8), ("b", 1), ("a", 9)]:
        tracker.observe(session, seq)
    assert (tracker.gaps, tracker.missing, tracker.duplicates) == (1, 1, 1)
    tracker.start("a", since=3)  # a resubscribe never moves the expectation back
    assert tracker.last("a") == 9


@pytest.mark.parametrize(
    ("shape", "params", "samples"),
    [
        pytest.param(
            "baseline",
            ShapeParams(users=4, duration=10),
            {0: (4, 5.0), 9.9: (4, 5.0), 10: None},
            id="baseline",
        ),
        pytest.param(
            "step",
            ShapeParams(step_users=5, step_seconds=10, max_users=12, duration=40, spawn_rate=2),
            {0: (5, 2.0), 10: (10, 2.0), 25: (12, 2.0), 39: (12, 2.0), 40: None},
            id="step-capped",
        ),
        pytest.param(
            "spike",
            ShapeParams(users=2, spike_users=30, spike_at=5, spike_seconds=3, duration=12),
            {4: (2, 5.0), 5: (30, 30.0), 8: (2, 30.0), 12: None},
            id="spike",
        ),
        pytest.param(
            "soak",
            ShapeParams(users=30, ramp_seconds=60, duration=3600),
            {0: (30, 0.5), 3599: (30, 0.5), 3600: None},
            id="soak",
        ),
        pytest.param(
            "hpa",
            ShapeParams(
                users=5, peak_users=50, warm_seconds=10, hold_seconds=20, cooldown_seconds=30
            ),
            {0: (5, 5.0), 10: (50, 5.0), 29: (50, 5.0), 30: (5, 5.0), 59: (5, 5.0), 60: None},
            id="hpa",
        ),
    ],
)
def test_shapes(
    shape: str, params: ShapeParams, samples: dict[float, tuple[int, float] | None]
) -> None:
    stages = build_stages(shape, params)
    assert {t: stage_at(stages, t) for t in samples} == samples


def test_every_shape_ends_and_has_a_locustfile() -> None:
    for shape in SHAPES:
        stages = build_stages(shape, ShapeParams())
        assert stage_at(stages, stages[-1].until) is None
        assert all(isinstance(s, Stage) and s.users >= 0 for s in stages)
        assert (LOADTESTS / f"shape_{shape}.py").is_file()
    with pytest.raises(ValueError, match="unknown shape 'wave'"):
        build_stages("wave", ShapeParams())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"HF_SHAPE_USERS": "ten"}, "HF_SHAPE_USERS: 'ten' is not an integer", id="int"
        ),
        pytest.param(
            {"HF_SHAPE_SPIKE_AT": "x"}, "HF_SHAPE_SPIKE_AT: 'x' is not a number", id="float"
        ),
        pytest.param({"HF_SHAPE_DURATION": "-1"}, "HF_SHAPE_DURATION: must be >= 0", id="negative"),
    ],
)
def test_shape_params_from_env_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShapeParams.from_env(env)
    assert ShapeParams.from_env({"HF_SHAPE_USERS": "3", "OTHER": "x"}).users == 3


def test_recorder_keeps_success_latency_and_failure_messages_apart() -> None:
    recorder = TimelineRecorder()
    recorder.add(10.9, "GET", "/a", 1.234, None)
    recorder.add(11.0, "GET", "/a", 2.0, None)
    recorder.add(11.5, "GET", "/a", 0.5, "ConnectionRefusedError: refused")
    recorder.add(11.6, "WS", "seq gap", None, "SequenceGap: events skipped", length=3)
    first, second, gap = recorder.drain()
    assert (first["t"], first["ok"], first["lat"]) == (10, 1, {"1.23": 1})
    assert (second["ok"], second["fail"], second["lat"]) == (1, 1, {"2": 1})
    assert second["errors"] == {"ConnectionRefusedError: refused": 1}
    assert (gap["fail"], gap["len"], gap["lat"]) == (1, 3, {})


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [(0, 0.0), (-3, 0.0), (0.12345, 0.123), (9.876, 9.88), (99.94, 99.9), (1234.5, 1230.0)],
)
def test_buckets_keep_three_significant_digits(ms: float, bucket: float) -> None:
    assert bucket_ms(ms) == bucket


def test_loadtests_import_neither_the_sandbox_nor_this_suite() -> None:
    """The locustfiles run on any machine with Locust (a worker pod included)."""
    offenders = []
    for path in sorted(LOADTESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(LOADTESTS)}: {name}"
                for name in names
                if name.split(".")[0] in ("sandbox", "resilience", "tests", "suites")
            ]
    assert not offenders, offenders


def test_only_the_locust_facing_modules_import_locust() -> None:
    """The pure modules stay importable in pytest without gevent's monkey patching."""
    pure = ["buckets", "ledger", "sequence", "recorder", "stages"]
    for name in pure:
        source = (LOADTESTS / "harmonyflow" / f"{name}.py").read_text()
        assert "locust" not in {n.split(".")[0] for n in _imports(source)}, name


def _imports(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


def test_the_pure_modules_docstring_examples() -> None:
    for module in (buckets, ledger, recorder, sequence, stages):
        assert doctest.testmod(module).failed == 0, module.__name__
