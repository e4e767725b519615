"""Certification profiles: the shipped ones load, and every mistake is one line naming
the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from harmonyflow.stages import ShapeParams

from resilience.errors import InvalidInputError
from resilience.load.certify import PROFILES
from resilience.load.profile import SHAPE_PARAMS, load_profile, resolve_profile
from resilience.slo.objectives import SloKind, Window

GOOD = """
description: a test profile
load:
  locustfiles: [sessions_rest.py]
  users: 2
  run_time: 5m
slos:
  - {name: p95, kind: latency, percentile: 99, max_ms: 100, types: [GET], window: fault}
  - {name: errors, kind: error_rate, max_ratio: 0.5}
  - {name: stale, kind: failures, max_failures: 0, names: [stale read]}
  - {name: rps, kind: throughput, min_rps: 1.5, exclude_types: [LEDGER]}
  - {name: lost, kind: events, max_events: 0, names: [disconnect]}
limits:
  recovery_seconds: {value: 120, why: the runbook's two minutes}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_profiles_load(path: Path) -> None:
    profile = load_profile(path)
    assert profile.slos and profile.description
    for file in profile.load.locustfiles:
        assert (PROFILES.parent / file).is_file(), file
    if profile.load.shape:
        assert (PROFILES.parent / f"shape_{profile.load.shape}.py").is_file()


def test_smoke_profile_exists_and_is_short() -> None:
    smoke = load_profile(resolve_profile("smoke", PROFILES))
    assert smoke.load.run_time <= 60 and smoke.load.shape is None


def test_a_good_profile(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD))
    assert profile.load.run_time == 300.0 and profile.load.users == 2
    latency, errors, stale, rps, lost = profile.slos
    assert (lost.kind, lost.limit) == (SloKind.EVENTS, 0.0)
    assert profile.limit("recovery_seconds") == 120.0
    assert profile.limits["recovery_seconds"].why == "the runbook's two minutes"
    with pytest.raises(InvalidInputError, match=r"limits\.spread: missing \(have: recovery"):
        profile.limit("spread")
    with pytest.raises(InvalidInputError, match="no SLO named 'nope'"):
        profile.slo("nope")
    assert (latency.kind, latency.limit, latency.percentile) == (SloKind.LATENCY, 100.0, 99.0)
    assert latency.window is Window.FAULT and latency.requests.types == {"GET"}
    assert (errors.kind, errors.limit, errors.window) == (SloKind.ERROR_RATE, 0.5, Window.ALL)
    assert stale.requests.names == {"stale read"} and rps.requests.exclude_types == {"LEDGER"}


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("load: [1", "invalid YAML at line", id="bad-yaml"),
        pytest.param("- 1\n- 2\n", "(top level): expected a mapping", id="not-a-mapping"),
        pytest.param(GOOD + "owner: me\n", "owner: unknown key", id="unknown-top-key"),
        pytest.param(
            replace("users: 2", "users: two"),
            "load.users: expected an integer, got 'two'",
            id="wrong-type",
        ),
        pytest.param(
            replace("users: 2", "users: 0"), "load.users: expected at least 1", id="too-small"
        ),
        pytest.param(
            replace("users: 2", "usres: 2"), "load.usres: unknown key", id="unknown-load-key"
        ),
        pytest.param(
            replace("run_time: 5m", "run_time: soon"),
            "load.run_time: expected seconds",
            id="duration",
        ),
        pytest.param(
            replace("run_time: 5m", "run_time: 0"),
            "load.run_time: expected a positive",
            id="zero-time",
        ),
        pytest.param(
            replace("[sessions_rest.py]", "[]"),
            "load.locustfiles: expected a non-empty",
            id="no-files",
        ),
        pytest.param(
            replace("[sessions_rest.py]", "[../x.py]"),
            "load.locustfiles[0]: expected a .py",
            id="escape",
        ),
        pytest.param(
            replace("users: 2", "shape: wave"), "load.shape: expected one of baseline", id="shape"
        ),
        pytest.param(
            replace("users: 2", "shape_params: {spike_size: 3}"),
            "load.shape_params.spike_size: unknown",
            id="shape-param",
        ),
        pytest.param(
            replace("users: 2", "env: {lower: x}"),
            "load.env.lower: expected an upper-case",
            id="env",
        ),
        pytest.param(
            GOOD.split("slos:", maxsplit=1)[0],
            "slos: expected a non-empty list, got None",
            id="no-slos",
        ),
        pytest.param(
            replace("kind: latency", "kind: speed"),
            "slos[0].kind: expected one of latency",
            id="kind",
        ),
        pytest.param(
            replace("max_ms: 100", "max_ms: fast"),
            "slos[0].max_ms: expected a number, got 'fast'",
            id="limit-type",
        ),
        pytest.param(
            replace("max_ms: 100", "max_ratio: 1"),
            "slos[0].max_ratio: unknown key",
            id="wrong-limit-key",
        ),
        pytest.param(replace(", max_ms: 100", ""), "slos[0].max_ms: missing", id="missing-limit"),
        pytest.param(
            replace("max_ratio: 0.5", "max_ratio: 5"),
            "slos[1].max_ratio: expected a number between 0 and 1",
            id="ratio",
        ),
        pytest.param(
            replace("percentile: 99", "percentile: 101"),
            "slos[0].percentile: expected at most 100",
            id="pct",
        ),
        pytest.param(
            replace("window: fault", "window: during"),
            "slos[0].window: expected one of all",
            id="window",
        ),
        pytest.param(
            replace("types: [GET]", "types: GET"), "slos[0].types: expected a list", id="selector"
        ),
        pytest.param(
            replace("name: errors", "name: p95"),
            "slos[1].name: duplicate name 'p95'",
            id="dup-name",
        ),
        pytest.param(
            replace("name: rps", "name: 'two words'"), "slos[3].name: expected a name", id="name"
        ),
        pytest.param(
            replace("{value: 120, why: the runbook's two minutes}", "{value: 120}"),
            "limits.recovery_seconds.why: missing: say where the number comes from",
            id="limit-without-why",
        ),
        pytest.param(
            replace("value: 120,", "value: soon,"),
            "limits.recovery_seconds.value: expected a number",
            id="limit-not-a-number",
        ),
        pytest.param(
            replace("value: 120,", "seconds: 120,"),
            "limits.recovery_seconds.seconds: unknown key",
            id="limit-key",
        ),
        pytest.param(
            replace("percentile: 99,", "percentile: 99, latency: 1,"),
            "slos[0].latency: unknown key",
            id="slo-key",
        ),
    ],
)
def test_profile_mistakes_are_one_line_naming_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(InvalidInputError) as caught:
        load_profile(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: ") and message in line, line
    assert "\n" not in line


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "mine.yaml")
    with pytest.raises(InvalidInputError, match=r"no profile 'nope' in .* \(have: mine\)"):
        resolve_profile("nope", tmp_path)


def test_shape_params_match_the_locustfiles_knobs() -> None:
    """The profile checker and loadtests/harmonyflow/stages.py list the same HF_SHAPE_* knobs."""
    assert tuple(ShapeParams.__dataclass_fields__) == SHAPE_PARAMS
