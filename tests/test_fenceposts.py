from __future__ import annotations

import pytest

from resilience.errors import PolicyError
from resilience.fenceposts import Fenceposts, IntOrPercent, resolve_fenceposts, scaled_value


@pytest.mark.parametrize(
    ("max_surge", "max_unavailable", "replicas", "expected"),
    [
        # kubernetes-semantics.md 1.1: the 25 %/25 % defaults
        pytest.param("25%", "25%", 1, (1, 0), id="defaults-1"),
        pytest.param("25%", "25%", 3, (1, 0), id="defaults-3"),
        pytest.param("25%", "25%", 4, (1, 1), id="defaults-4"),
        pytest.param("25%", "25%", 10, (3, 2), id="defaults-10"),
        pytest.param(1, 1, 3, (1, 1), id="seed"),
        pytest.param(0, 0, 3, (0, 1), id="both-zero-forces-one-unavailable"),
        pytest.param("0%", "10%", 3, (0, 1), id="percent-both-round-to-zero"),
        pytest.param(1, 5, 3, (1, 3), id="unavailable-capped-at-replicas"),
        pytest.param(1, 1, 0, (1, 0), id="no-replicas-no-unavailable"),
        pytest.param("50%", "50%", 3, (2, 1), id="surge-up-unavailable-down"),
    ],
)
def test_resolve_fenceposts(
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    replicas: int,
    expected: tuple[int, int],
) -> None:
    result = resolve_fenceposts(max_surge, max_unavailable, replicas)
    assert (result.max_surge, result.max_unavailable) == expected


def test_limits_follow_from_fenceposts() -> None:
    posts = Fenceposts(replicas=3, max_surge=1, max_unavailable=1)
    assert (posts.max_total_pods, posts.min_available) == (4, 2)


@pytest.mark.parametrize("bad", ["abc", "-1", "12.5%", "%", -1, True])
def test_scaled_value_rejects_bad_input(bad: IntOrPercent) -> None:
    with pytest.raises(PolicyError):
        scaled_value(bad, 10, round_up=True)
