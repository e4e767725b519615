"""Safety interlocks: pure decisions on whether the suite may touch a target.

Three rules, each a pure function returning a `Refusal` (or None) so that the
CLI, the Chaos Toolkit controls and the suites refuse with the same words:

- **production**: a context whose name, cluster name or server URL contains a
  production token (`prod`, `production`, `prd` by default, matched as whole
  tokens between non-alphanumerics, case-insensitive) is refused unless
  `allow_production` is set *and* the confirmation typed back is exactly the
  context name. The message says what to type.
- **namespace**: only allowlisted namespaces (`harmonyflow`,
  `harmonyflow-staging` by default) may be disrupted.
- **blast radius**: an action that would disrupt more pods at once than the
  declared budget is refused, with both numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from resilience.errors import InvalidInputError, ResilienceError
from resilience.policy import IntendedPolicy

DEFAULT_PRODUCTION_PATTERNS: tuple[str, ...] = ("prod", "production", "prd")
DEFAULT_NAMESPACE_ALLOWLIST: tuple[str, ...] = ("harmonyflow", "harmonyflow-staging")

Rule = Literal["production", "namespace", "blast-radius"]


@dataclass(frozen=True)
class Refusal:
    rule: Rule
    message: str

    def __str__(self) -> str:
        return self.message


class InterlockRefused(ResilienceError):
    """A safety interlock refused the run; nothing was touched."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        super().__init__("; ".join(r.message for r in refusals))
        self.refusals = tuple(refusals)


@dataclass(frozen=True)
class SafetySettings:
    production_patterns: tuple[str, ...] = DEFAULT_PRODUCTION_PATTERNS
    namespace_allowlist: tuple[str, ...] = DEFAULT_NAMESPACE_ALLOWLIST
    allow_production: bool = False
    confirmation: str | None = None  # what the operator typed back


def production_match(names: Sequence[str], patterns: Sequence[str]) -> str | None:
    """The first pattern found as a whole token in any of `names`.

    >>> production_match(["eks-prod-us-west-2"], DEFAULT_PRODUCTION_PATTERNS)
    'prod'
    >>> production_match(["staging", "https://product-api.example"], DEFAULT_PRODUCTION_PATTERNS)
    """
    for pattern in patterns:
        token = re.compile(rf"(?<![a-z0-9]){re.escape(pattern.lower())}(?![a-z0-9])")
        if any(token.search(name.lower()) for name in names if name):
            return pattern
    return None


def production_refusal(
    context: str,
    server: str,
    *,
    cluster: str = "",
    allow_production: bool = False,
    confirmation: str | None = None,
    patterns: Sequence[str] = DEFAULT_PRODUCTION_PATTERNS,
) -> Refusal | None:
    matched = production_match([context, cluster, server], patterns)
    if matched is None:
        return None
    where = f"context {context!r} (server {server})"
    if not allow_production:
        return Refusal(
            "production",
            f"{where} looks like production (matches {matched!r}); refusing. To run anyway, "
            f"allow production and confirm by typing the context name exactly: {context}",
        )
    if confirmation != context:
        return Refusal(
            "production",
            f"{where} looks like production (matches {matched!r}) and the confirmation "
            f"{confirmation!r} does not match; type the context name exactly: {context}",
        )
    return None


def namespace_refusal(
    namespace: str, allowlist: Sequence[str] = DEFAULT_NAMESPACE_ALLOWLIST
) -> Refusal | None:
    if namespace in allowlist:
        return None
    return Refusal(
        "namespace",
        f"namespace {namespace!r} is not on the allowlist ({', '.join(allowlist) or 'empty'}); "
        f"refusing to disrupt it",
    )


def blast_radius_refusal(planned: int, budget: int, action: str = "the action") -> Refusal | None:
    """Refuse when `planned` simultaneous pod disruptions exceed `budget`.

    >>> print(blast_radius_refusal(2, 1, "terminate_pods"))
    terminate_pods would disrupt 2 pods at once, more than the budget of 1
    """
    if planned < 0 or budget < 0:
        raise InvalidInputError(
            f"{action}: planned disruptions ({planned}) and budget ({budget}) must not be negative"
        )
    if planned <= budget:
        return None
    return Refusal(
        "blast-radius",
        f"{action} would disrupt {planned} pods at once, more than the budget of {budget}",
    )


def broker_quorum_refusal(
    running: Sequence[str], stopping: Sequence[str], keep_running: int
) -> Refusal | None:
    """Refuse a broker stop that would leave fewer than `keep_running` brokers running.

    A node-loss experiment keeps a quorum (2 of 3): on a cluster already short of a
    node, stopping one more would be an outage, not the fault the experiment declares.

    >>> print(broker_quorum_refusal(["rabbitmq-1", "rabbitmq-2"], ["rabbitmq-1"], 2))
    stopping rabbitmq-1 would leave 1 of the 2 running brokers, fewer than keep_running 2
    """
    if keep_running < 0:
        raise InvalidInputError(f"keep_running ({keep_running}) must not be negative")
    left = len(set(running) - set(stopping))
    if left >= keep_running:
        return None
    return Refusal(
        "blast-radius",
        f"stopping {', '.join(sorted(stopping))} would leave {left} of the {len(running)} "
        f"running brokers, fewer than keep_running {keep_running}",
    )


def disruption_budget(policy: IntendedPolicy) -> int:
    """Pods that may be down at once by intent: replicas - desiredHealthy of the PDB,
    else the rollout's maxUnavailable."""
    replicas = policy.rollout.replicas
    if policy.disruption is not None:
        return max(0, replicas - policy.disruption.desired_healthy(replicas))
    return policy.rollout.fenceposts.max_unavailable


def target_refusals(
    context: str, server: str, namespace: str, settings: SafetySettings, cluster: str = ""
) -> tuple[Refusal, ...]:
    found = (
        production_refusal(
            context,
            server,
            cluster=cluster,
            allow_production=settings.allow_production,
            confirmation=settings.confirmation,
            patterns=settings.production_patterns,
        ),
        namespace_refusal(namespace, settings.namespace_allowlist),
    )
    return tuple(r for r in found if r is not None)


def enforce(refusals: Sequence[Refusal | None]) -> None:
    """Raise InterlockRefused naming every refusal; do nothing when there is none."""
    real = [r for r in refusals if r is not None]
    if real:
        raise InterlockRefused(real)
