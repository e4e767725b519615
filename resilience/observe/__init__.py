"""Watch-based monitors recorded as one timeline, and pure checkers over its states.

- `records`, `reduce`: typed frozen observations and the raw-JSON reducers;
- `timeline`: events, marks and the world state after each event;
- `watchers`, `monitors`: the background list+watch loops and their lifecycle;
- `codec`: JSON-lines export and import;
- `rollout`, `disruption`, `autoscaling`, `probes`, `recovery`: the checkers,
  each pure over a sequence of states and the intended policy, each returning
  the suite's one result type, `resilience.slo.result.CheckResult`.
"""

from resilience.observe.autoscaling import ScaleStep, check_hpa, hpa_steps
from resilience.observe.codec import export_jsonl, load_jsonl, read_jsonl, write_jsonl
from resilience.observe.disruption import Dip, check_disruption_budget, disruption_dips
from resilience.observe.monitors import MonitorError, Monitors, MonitorScope, monitoring
from resilience.observe.probes import (
    PodHistory,
    check_liveness_restart,
    check_readiness_recovered_without_restart,
    pod_histories,
)
from resilience.observe.records import EventType, ResourceKind
from resilience.observe.recovery import Recovery, check_recovery, measure_recovery
from resilience.observe.rollout import check_rollout_limits, rollout_samples
from resilience.observe.timeline import Mark, State, Timeline, TimelineEvent, fold
from resilience.observe.watchers import WatchTimeouts

__all__ = [
    "Dip",
    "EventType",
    "Mark",
    "MonitorError",
    "MonitorScope",
    "Monitors",
    "PodHistory",
    "Recovery",
    "ResourceKind",
    "ScaleStep",
    "State",
    "Timeline",
    "TimelineEvent",
    "WatchTimeouts",
    "check_disruption_budget",
    "check_hpa",
    "check_liveness_restart",
    "check_readiness_recovered_without_restart",
    "check_recovery",
    "check_rollout_limits",
    "disruption_dips",
    "export_jsonl",
    "fold",
    "hpa_steps",
    "load_jsonl",
    "measure_recovery",
    "monitoring",
    "pod_histories",
    "read_jsonl",
    "rollout_samples",
    "write_jsonl",
]
