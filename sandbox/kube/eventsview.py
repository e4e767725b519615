"""events.k8s.io/v1 is a second view of core/v1 Events: the same objects, other field names."""

from __future__ import annotations

import copy
from typing import Any

KubeObject = dict[str, Any]


def to_events_v1(core: KubeObject) -> KubeObject:
    event = {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": copy.deepcopy(core.get("metadata", {})),
        "regarding": copy.deepcopy(core.get("involvedObject", {})),
        "reason": core.get("reason"),
        "note": core.get("message"),
        "type": core.get("type"),
        "reportingController": core.get("reportingComponent")
        or core.get("source", {}).get("component", ""),
        "reportingInstance": core.get("reportingInstance", ""),
        "eventTime": core.get("eventTime"),
        "deprecatedFirstTimestamp": core.get("firstTimestamp"),
        "deprecatedLastTimestamp": core.get("lastTimestamp"),
        "deprecatedCount": core.get("count"),
        "deprecatedSource": core.get("source"),
        "action": core.get("action", core.get("reason")),
    }
    return {key: value for key, value in event.items() if value is not None}


def to_core(event: KubeObject) -> KubeObject:
    core = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": copy.deepcopy(event.get("metadata", {})),
        "involvedObject": copy.deepcopy(event.get("regarding", {})),
        "reason": event.get("reason"),
        "message": event.get("note"),
        "type": event.get("type"),
        "reportingComponent": event.get("reportingController"),
        "reportingInstance": event.get("reportingInstance"),
        "eventTime": event.get("eventTime"),
        "action": event.get("action"),
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount"),
        "source": event.get("deprecatedSource") or {"component": event.get("reportingController")},
    }
    return {key: value for key, value in core.items() if value is not None}
