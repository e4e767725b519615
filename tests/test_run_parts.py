"""tests/run_parts.py: how two pytest processes' exit codes make one verdict."""

from __future__ import annotations

import doctest

import pytest

from tests import run_parts
from tests.run_parts import in_part, needs_full_sandbox


@pytest.mark.parametrize(
    ("codes", "verdict"),
    [
        pytest.param([0, 0], 0, id="both-passed"),
        pytest.param([5, 0], 0, id="no-full-sandbox-test-selected"),
        pytest.param([5, 5], 0, id="nothing-selected"),
        pytest.param([1, 0], 1, id="full-sandbox-failed"),
        pytest.param([0, 1], 1, id="the-rest-failed"),
        pytest.param([2, 1], 2, id="first-failure-wins"),
        pytest.param([0, -15], -15, id="killed-by-a-signal"),
    ],
)
def test_overall(codes: list[int], verdict: int) -> None:
    assert run_parts.overall(codes) == verdict


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(run_parts).failed == 0


@pytest.mark.parametrize(
    ("markers", "fixtures", "full_sandbox"),
    [
        pytest.param([], ["tmp_path"], False, id="pure"),
        pytest.param(["resilience"], ["target", "monitors"], True, id="a-suite"),
        pytest.param([], ["live"], True, id="a-live-module"),
        pytest.param([], ["sandbox"], False, id="a-control-plane-of-its-own"),
        pytest.param(["full_sandbox"], ["state"], True, id="starts-one-itself"),
        pytest.param(["sandbox_with"], [], True, id="needs-optional-parts"),
    ],
)
def test_which_part_a_test_is_in(
    markers: list[str], fixtures: list[str], full_sandbox: bool
) -> None:
    assert needs_full_sandbox(markers, fixtures) is full_sandbox
    assert in_part("full-sandbox", markers, fixtures) is full_sandbox
    assert in_part("rest", markers, fixtures) is not full_sandbox
    assert in_part("all", markers, fixtures)
