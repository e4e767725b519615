"""The experiment's blast radius: no action disrupts more pods at once than declared.

Experiments declare `max_disrupted_pods` in their configuration; a disruptive action
counts the pods it is about to take down and refuses beyond it. The refusal is an
`InterruptExecution`, so the run stops (and its rollbacks run) instead of going on.
"""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import InterruptExecution

from resilience.safety.refusals import blast_radius_refusal

BUDGET_KEY = "max_disrupted_pods"


def enforce_budget(configuration: dict[str, Any] | None, planned: int, action: str) -> None:
    """Stop the run when `planned` exceeds the declared budget (no budget declared: no limit)."""
    declared = (configuration or {}).get(BUDGET_KEY)
    if declared is None:
        return
    refusal = blast_radius_refusal(planned, int(declared), action)
    if refusal is not None:
        raise InterruptExecution(f"{refusal.message} ({BUDGET_KEY})")
