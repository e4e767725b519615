"""Whether a Chaos Toolkit run passed, read from its journal (pure).

`chaos run` exits 0 when an action failed, and a deviation during the method
does not count. The suite's verdict is stricter: a run passes only when it
completed, no activity (method or rollback) failed, and every steady-state check
(before, during and after the method) met its tolerance.

    >>> failures({"status": "completed", "deviated": False, "run": [], "rollbacks": [],
    ...           "steady_states": {"before": {"steady_state_met": True}, "during": [],
    ...                             "after": {"steady_state_met": True}}})
    []
"""

from __future__ import annotations

from typing import Any


def failures(journal: dict[str, Any]) -> list[str]:
    """One line per reason the run failed, in the order they happened."""
    reasons: list[str] = []
    stop_condition = journal.get("stop_condition") or {}
    if stop_condition.get("refused"):
        # nothing ran: the one line that says why (and any rollback that failed)
        return [f"refused to start: {stop_condition['refused']}", *_failed(journal, ("rollbacks",))]
    status = journal.get("status")
    if status != "completed":
        reasons.append(f"run {status}")
    safeguard = journal.get("safeguard") or {}
    if safeguard.get("triggered_by"):
        reasons.append(f"safeguard stopped the method: {safeguard['triggered_by']}")
    if stop_condition.get("triggered_by"):
        reasons.append(f"stop condition stopped the method: {stop_condition['triggered_by']}")
    dead_man = journal.get("dead_man") or {}
    if dead_man.get("triggered_by"):
        back = "" if dead_man.get("targets_back", True) else " (still silent at the rollbacks)"
        reasons.append(f"dead-man switch stopped the method: {dead_man['triggered_by']}{back}")
    states = journal.get("steady_states") or {}
    before = states.get("before")
    if before is not None and not before.get("steady_state_met"):
        reasons.append("steady state not met before the method: " + _unmet(before))
    for index, during in enumerate(states.get("during") or []):
        if not during.get("steady_state_met"):
            reasons.append(
                f"steady state deviated during the method (check {index + 1}): {_unmet(during)}"
            )
            break
    after = states.get("after")
    if journal.get("deviated") or (after is not None and not after.get("steady_state_met")):
        reasons.append("steady state deviated after the method: " + _unmet(after or {}))
    return reasons + _failed(journal, ("run", "rollbacks"))


def _failed(journal: dict[str, Any], phases: tuple[str, ...]) -> list[str]:
    reasons = []
    for phase in phases:
        for entry in journal.get(phase) or []:
            if entry.get("status") == "failed":
                name = entry.get("activity", {}).get("name", "?")
                reasons.append(
                    f"{_phase_name(phase)} {name!r} failed: {_last_line(entry.get('exception'))}"
                )
    return reasons


def _unmet(state: dict[str, Any]) -> str:
    names = [
        f"{p.get('activity', {}).get('name', '?')} = {p.get('output')!r}"
        for p in state.get("probes") or []
        if not p.get("tolerance_met", True)
    ]
    return ", ".join(names) or "no probe result"


def _phase_name(phase: str) -> str:
    return "rollback" if phase == "rollbacks" else "activity"


def _last_line(exception: Any) -> str:
    if isinstance(exception, list):
        lines = [str(line).strip() for line in exception if str(line).strip()]
        return lines[-1] if lines else "?"
    return str(exception or "?").strip().splitlines()[-1] if exception else "?"
