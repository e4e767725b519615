"""The resilience score: one number per game day, with its formula on the page (pure).

A score is only useful if people can recompute it, so it is a plain weighted sum:

    score = round(100 * mean over the plan's steps (skipped ones left out) of
                  0.5 * V + 0.3 * E + 0.2 * R)
    V = 1 when the step passed (experiment verdict and load SLOs), else 0
    E = 1 - min(1, e / B): e the fault-window error ratio, B the fault-window error
        budget of the SLOs the step is judged by (the suite's for that fault, else the
        day's load profile), over the requests that budget counts; for a budget of at
        most N failed requests, E = 1 - min(1, f / (N + 1)) with f the failed requests;
        0 when the step did not run
    R = 1 - min(1, r / T): r the time to recovery (s), T the step's recovery budget;
        0 when it never recovered or did not run

A step that was not run (the day stopped before it) scores 0: an interrupted day
cannot score as well as a finished one.

    >>> score([StepScore(True, 0.0, 0.05, 0.0, 120.0), StepScore(False, 0.05, 0.05, None, 120.0)])
    50
    >>> component(StepScore(True, 0.01, 0.05, 30.0, 120.0))
    0.89
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

VERDICT_WEIGHT = 0.5
ERROR_WEIGHT = 0.3
RECOVERY_WEIGHT = 0.2
FORMULA = (
    "score = round(100 x mean over steps of (0.5*V + 0.3*E + 0.2*R)); "
    "V = 1 if the step passed else 0; "
    "E = 1 - min(1, fault-window error ratio / error budget), or 1 - min(1, failed requests "
    "/ (N + 1)) for a budget of N failed requests; "
    "R = 1 - min(1, time to recovery / recovery budget) (0 if it never recovered); "
    "a step not run scores 0, skipped steps are left out"
)


@dataclass(frozen=True)
class StepScore:
    passed: bool
    error_ratio: float | None  # None: the step did not run (no fault window)
    error_budget: float
    recovery_seconds: float | None  # None: never recovered, or did not run
    recovery_budget: float
    failures: int | None = None  # failed requests in the fault window (counted budgets)
    max_failures: int | None = None  # a budget of at most this many failed requests


def error_component(step: StepScore) -> float:
    """E of one step: how much of its fault-window budget is left.

    >>> error_component(StepScore(True, 0.0, 0.0, 0.0, 1.0, failures=0, max_failures=0))
    1.0
    >>> error_component(StepScore(True, 0.1, 0.0, 0.0, 1.0, failures=1, max_failures=0))
    0.0
    >>> error_component(StepScore(True, 0.1, 0.0, 0.0, 1.0, failures=1, max_failures=3))
    0.75
    """
    if step.error_ratio is None:
        return 0.0
    if step.max_failures is not None and step.failures is not None:
        return 1.0 - min(1.0, step.failures / (step.max_failures + 1))
    if step.error_budget > 0:
        return 1.0 - min(1.0, step.error_ratio / step.error_budget)
    return 1.0 if step.error_ratio == 0 else 0.0  # no budget: clean, or spent


def component(step: StepScore) -> float:
    """0.5*V + 0.3*E + 0.2*R of one step, rounded to 4 places."""
    verdict = 1.0 if step.passed else 0.0
    errors = error_component(step)
    recovery = 0.0
    if step.recovery_seconds is not None and step.recovery_budget > 0:
        recovery = 1.0 - min(1.0, max(0.0, step.recovery_seconds) / step.recovery_budget)
    value = VERDICT_WEIGHT * verdict + ERROR_WEIGHT * errors + RECOVERY_WEIGHT * recovery
    return round(value, 4)


def score(steps: Sequence[StepScore]) -> int | None:
    """0..100, or None for a plan whose every step was skipped."""
    if not steps:
        return None
    return round(100 * sum(component(s) for s in steps) / len(steps))
