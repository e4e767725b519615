"""The suite's one result type: violations written for the engineer on call.

Every check -- a load SLO, the witness traffic's error budget, lost writes, the
rollout, disruption, HPA, probe and recovery checkers over the watch timeline --
returns a `CheckResult`. A failing one holds `Violation`s, and each names the limit
(`rollout.maxSurge`, `load.slo.<name>`, `traffic.errorRate`), its value, what was
observed, when (wall clock, UTC, milliseconds) and at which timeline event, so
that the exported timeline can be opened at that line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from resilience.errors import ResilienceError


def format_clock(wall: float) -> str:
    """Wall-clock time of day in UTC with milliseconds.

    >>> format_clock(1700000523.12)
    '22:22:03.120'
    """
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S.%f")[:-3]


@dataclass(frozen=True)
class Violation:
    limit: str  # e.g. rollout.maxSurge, pdb.minAvailable, hpa.maxReplicas
    limit_value: float
    observed: float
    wall: float
    index: int
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one checker: every violation, first first, plus what it measured."""

    check: str
    violations: tuple[Violation, ...] = ()
    # Figures worth a line in a report (e.g. max_pods, min_available, states).
    details: Mapping[str, float | int | str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def first(self) -> Violation | None:
        return self.violations[0] if self.violations else None

    def summary(self, limit: int = 5) -> str:
        if self.ok:
            return f"{self.check}: ok"
        lines = [f"{self.check}: {len(self.violations)} violation(s)"]
        lines += [f"  {v.message}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  ... and {len(self.violations) - limit} more")
        return "\n".join(lines)

    def raise_if_violated(self) -> CheckResult:
        """Raise InvariantViolated with the summary; return self when ok (for chaining)."""
        if not self.ok:
            raise InvariantViolated(self)
        return self


class InvariantViolated(ResilienceError):
    """The system under test broke an intended limit: a finding, not a bad input."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.summary())
        self.result = result
