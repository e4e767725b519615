"""Rolling-update fenceposts, as the Kubernetes deployment controller computes them.

Mirrors `ResolveFenceposts`, `MaxUnavailable` and `MaxSurge` in
pkg/controller/deployment/util/deployment_util.go.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from resilience.errors import PolicyError

IntOrPercent = int | str

_PERCENT = re.compile(r"^(\d+)%$")


@dataclass(frozen=True)
class Fenceposts:
    """How far a rollout of `replicas` pods may go above and below that number.

    >>> resolve_fenceposts("25%", "25%", 10)
    Fenceposts(replicas=10, max_surge=3, max_unavailable=2)
    """

    replicas: int
    max_surge: int
    max_unavailable: int

    @property
    def max_total_pods(self) -> int:
        """At most this many pods counted by ReplicaSet spec (`NewRSNewReplicas`)."""
        return self.replicas + self.max_surge

    @property
    def min_available(self) -> int:
        """Old pods are not scaled down below this many available (`MinAvailable`)."""
        return self.replicas - self.max_unavailable


def scaled_value(value: IntOrPercent, total: int, round_up: bool) -> int:
    """An IntOrString resolved against `total`, like intstr.GetScaledValueFromIntOrPercent.

    >>> scaled_value("25%", 3, round_up=True), scaled_value("25%", 3, round_up=False)
    (1, 0)
    """
    if isinstance(value, bool):
        raise PolicyError(f"expected an integer or a percentage, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise PolicyError(f"must not be negative, got {value}")
        return value
    match = _PERCENT.match(value.strip())
    if match is None:
        raise PolicyError(f"expected an integer or a percentage like '25%', got {value!r}")
    scaled = int(match.group(1)) * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def resolve_fenceposts(
    max_surge: IntOrPercent, max_unavailable: IntOrPercent, replicas: int
) -> Fenceposts:
    """Surge rounds up, unavailable rounds down; both zero forces unavailable to 1.

    MaxUnavailable is also capped at `replicas`, and is 0 when replicas is 0.

    >>> resolve_fenceposts(1, 1, 3)
    Fenceposts(replicas=3, max_surge=1, max_unavailable=1)
    >>> resolve_fenceposts("0%", "10%", 3)
    Fenceposts(replicas=3, max_surge=0, max_unavailable=1)
    """
    surge = scaled_value(max_surge, replicas, round_up=True)
    unavailable = scaled_value(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    unavailable = 0 if replicas == 0 else min(unavailable, replicas)
    return Fenceposts(replicas=replicas, max_surge=surge, max_unavailable=unavailable)
