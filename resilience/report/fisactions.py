"""The AWS FIS actions of a step, read from its chaos journal (pure).

`run_fis_experiment` is one Chaos Toolkit action, but the experiment it starts is
several faults on their own clocks: the zone's network cut for 2 minutes, its
instances off until `startInstancesAfterDuration`, a failover that ends at once. Each
action's band runs from its `startTime` to its `endTime` as GetExperiment reports
them (the journal keeps them in Unix seconds); an action still running when the
experiment was last read lasts until the step's end. Skipped and cancelled actions
(FIS gives them a start time too) and actions that never started have no band.

    >>> entry = {"activity": {"name": "fis-az", "provider": {"func": "run_fis_experiment"}},
    ...          "status": "succeeded", "output": {"experiment_id": "EXP1", "actions": {
    ...              "Cut": {"status": "completed", "action_id": "aws:network:disrupt-connectivity",
    ...                      "start": 10.0, "end": 130.0},
    ...              "Failover-RDS": {"status": "skipped", "action_id": "aws:fis:wait",
    ...                               "start": None, "end": None}}}}
    >>> [(a.label, a.start, a.end) for a in fis_actions({"run": [entry]}, until=200.0)]
    [('Cut (aws:network:disrupt-connectivity)', 10.0, 130.0)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RUN_FIS = "run_fis_experiment"
# FIS gives these a startTime too, but they did nothing: no band
NOT_RUN = frozenset({"skipped", "cancelled"})


@dataclass(frozen=True)
class FisAction:
    """One action of an FIS experiment the step ran, as a band."""

    activity: str  # the experiment's action that ran FIS
    experiment_id: str
    name: str  # the template's action name
    action_id: str
    status: str
    start: float
    end: float

    @property
    def label(self) -> str:
        return f"{self.name} ({self.action_id})"


def fis_actions(journal: Mapping[str, Any], until: float) -> list[FisAction]:
    """Every FIS action that ran in the journal's method, in start order."""
    found = []
    for entry in journal.get("run") or []:
        activity = entry.get("activity") or {}
        output = entry.get("output")
        if (activity.get("provider") or {}).get("func") != RUN_FIS:
            continue
        if not isinstance(output, Mapping) or not isinstance(output.get("actions"), Mapping):
            continue
        for name, action in output["actions"].items():
            start, end = action.get("start"), action.get("end")
            if not isinstance(start, int | float) or action.get("status") in NOT_RUN:
                continue
            found.append(
                FisAction(
                    activity=str(activity.get("name")),
                    experiment_id=str(output.get("experiment_id", "")),
                    name=str(name),
                    action_id=str(action.get("action_id", "")),
                    status=str(action.get("status", "")),
                    start=float(start),
                    end=float(end) if isinstance(end, int | float) else max(until, start),
                )
            )
    return sorted(found, key=lambda a: (a.start, a.name))
