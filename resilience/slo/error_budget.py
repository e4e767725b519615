"""The error budget: how many of the requests a fault may fail, and the check of it.

`ErrorBudget` is read from a load profile's SLO (`from_slo`), so the witness
traffic is judged by the same number as the load; `check_error_budget` is its
pure verdict over a `TrafficOutcome` (what one traffic run saw), a violation of
`traffic.errorRate` naming the budget, the observed rate and the first failures.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.slo.objectives import Slo, SloKind
from resilience.slo.result import CheckResult, Violation, format_clock
from resilience.slo.writes import Ack

ERROR_BUDGET_LIMIT = "traffic.errorRate"


@dataclass(frozen=True)
class Failure:
    """One request that did not succeed: status 0 means no HTTP answer at all."""

    wall: float
    method: str
    path: str
    status: int
    reason: str

    def describe(self) -> str:
        answer = f"HTTP {self.status}" if self.status else "no answer"
        return f"{self.method} {self.path} at {format_clock(self.wall)}: {answer} {self.reason}"


@dataclass(frozen=True)
class TrafficOutcome:
    """What one traffic run saw: counts, the first failures, and the acknowledged writes."""

    requests: int = 0
    failures: int = 0
    samples: tuple[Failure, ...] = ()
    acked: tuple[Ack, ...] = ()
    seconds: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ErrorBudget:
    """At most `max_error_rate` of the requests may fail, or at most `max_failures` of
    them when set, and never fewer than `min_requests` may have been sent (too little
    traffic proves nothing). `source` names the profile SLO it was read from."""

    max_error_rate: float = 1.0
    min_requests: int = 20
    max_failures: int | None = None
    source: str = ""

    @classmethod
    def from_slo(cls, slo: Slo) -> ErrorBudget:
        """The witness traffic judged by the same number as the load: a `failures` SLO
        gives a count, an `error_rate` SLO a ratio.

        >>> from resilience.slo.objectives import SloKind
        >>> ErrorBudget.from_slo(Slo("fault-window-error-budget", SloKind.FAILURES, 0)).describe()
        '0 failed requests (fault-window-error-budget)'
        """
        if slo.kind is SloKind.FAILURES:
            return cls(max_failures=int(slo.limit), source=slo.name)
        if slo.kind is SloKind.ERROR_RATE:
            return cls(max_error_rate=slo.limit, source=slo.name)
        raise ValueError(f"SLO {slo.name} is a {slo.kind.value} SLO, not an error budget")

    def exceeded_by(self, outcome: TrafficOutcome) -> bool:
        if self.max_failures is not None:
            return outcome.failures > self.max_failures
        return outcome.error_rate > self.max_error_rate

    def describe(self) -> str:
        limit = (
            f"{self.max_failures} failed requests"
            if self.max_failures is not None
            else f"{self.max_error_rate:.2%}"
        )
        return f"{limit} ({self.source})" if self.source else limit


def check_error_budget(outcome: TrafficOutcome, budget: ErrorBudget, what: str) -> CheckResult:
    """Failed requests within the budget, with enough requests to tell.

    >>> outcome = TrafficOutcome(requests=200, failures=3)
    >>> check_error_budget(outcome, ErrorBudget(0.01), "rollout").first.message
    'rollout: 3 of 200 requests through the ingress failed (1.50%), more than the budget of 1.00%'
    >>> check_error_budget(outcome, ErrorBudget(0.02), "rollout").ok
    True
    """
    details: dict[str, float | int | str] = {
        "requests": outcome.requests,
        "failures": outcome.failures,
        "error_rate": round(outcome.error_rate, 5),
        "budget": budget.describe(),
    }
    if outcome.requests < budget.min_requests:
        message = (
            f"{what}: only {outcome.requests} requests went out (at least {budget.min_requests} "
            "needed to judge the error budget); the traffic loop could not run"
        )
        return CheckResult(
            "error budget",
            (
                Violation(
                    ERROR_BUDGET_LIMIT, budget.min_requests, outcome.requests, 0.0, -1, message
                ),
            ),
            details,
        )
    if not budget.exceeded_by(outcome):
        return CheckResult("error budget", (), details)
    first = outcome.samples[0] if outcome.samples else None
    message = (
        f"{what}: {outcome.failures} of {outcome.requests} requests through the ingress failed "
        f"({outcome.error_rate:.2%}), more than the budget of {budget.describe()}"
    )
    counted = budget.max_failures
    if outcome.samples:
        message += "; first: " + "; ".join(f.describe() for f in outcome.samples[:3])
    return CheckResult(
        "error budget",
        (
            Violation(
                ERROR_BUDGET_LIMIT,
                budget.max_error_rate if counted is None else counted,
                round(outcome.error_rate, 5) if counted is None else outcome.failures,
                first.wall if first else 0.0,
                -1,
                message,
            ),
        ),
        details,
    )
