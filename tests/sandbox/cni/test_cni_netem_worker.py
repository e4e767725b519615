"""The netem worker's command line: what it accepts, and one line and exit 2 otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cni.faults import NetemParams
from sandbox.cni.netem_worker import (
    EXIT_USAGE,
    Options,
    _UsageError,
    params_from_json,
    params_to_json,
    parse_arguments,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["--queue", "7", "--spec", '{"delay_seconds": 0.04}'],
            Options(7, NetemParams(delay_seconds=0.04), None, None),
            id="delay",
        ),
        pytest.param(
            ["--queue", "0", "--spec", "{}", "--seed", "3", "--parent", "99"],
            Options(0, NetemParams(), 3, 99),
            id="seed-and-parent",
        ),
        pytest.param(
            [
                "--queue",
                "9",
                "--spec",
                '{"rate_bytes_per_second": 1000, "buffer_bytes": 1500, "limit_bytes": 3000.0}',
            ],
            Options(
                9,
                NetemParams(rate_bytes_per_second=1000.0, buffer_bytes=1500, limit_bytes=3000),
                None,
                None,
            ),
            id="integral-float-for-an-int-field",
        ),
    ],
)
def test_parse_arguments(argv: list[str], expected: Options) -> None:
    assert parse_arguments(argv) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--spec", "{}"], "required: --queue", id="no-queue"),
        pytest.param(
            ["--queue", "70000", "--spec", "{}"], "within 0..65535", id="queue-out-of-range"
        ),
        pytest.param(["--queue", "1", "--spec", "{"], "not JSON", id="spec-not-json"),
        pytest.param(["--queue", "1", "--spec", "[]"], "JSON object", id="spec-not-an-object"),
        pytest.param(
            ["--queue", "1", "--spec", '{"latency": 1}'],
            "unknown fields: latency",
            id="unknown-field",
        ),
        pytest.param(
            ["--queue", "1", "--spec", '{"loss": "25%"}'], "must be a number", id="string-value"
        ),
        pytest.param(
            ["--queue", "1", "--spec", '{"buffer_bytes": 1.5}'],
            "must be an integer",
            id="fractional-int",
        ),
        pytest.param(
            ["--queue", "1", "--spec", '{"loss": 2}'],
            "loss must be within 0..1",
            id="invalid-value",
        ),
    ],
)
def test_parse_arguments_refuses(argv: list[str], message: str) -> None:
    with pytest.raises(_UsageError, match=message):
        parse_arguments(argv)


def test_params_round_trip_through_json() -> None:
    params = NetemParams(delay_seconds=0.1, jitter_seconds=0.01, loss=0.2, buffer_bytes=5)
    assert params_from_json(params_to_json(params)) == params


def test_a_command_line_mistake_prints_one_line_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.cni.netem_worker", "--queue", "1", "--spec", "{"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("netem worker: --spec is not JSON")
