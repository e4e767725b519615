"""Server-side `meta.k8s.io/v1 Table` output, so that `kubectl get` prints real columns.

kubectl prints cells verbatim, so ages are formatted here the way
`duration.HumanDuration` does it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.kube import customresources
from sandbox.kube.clock import parse_time

KubeObject = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority (1 = only with -o wide)


def human_duration(seconds: float) -> str:
    """An age as kubectl prints it (apimachinery duration.HumanDuration).

    >>> human_duration(75), human_duration(400), human_duration(4000), human_duration(200000)
    ('75s', '6m40s', '66m', '2d7h')
    """
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days < 365 * 8 else f"{days // 365}y"


def age(obj: KubeObject, now: datetime) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration((now - parse_time(created)).total_seconds())


def _condition(obj: KubeObject, kind: str) -> dict[str, Any]:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _pod_status(pod: KubeObject) -> str:
    status = pod.get("status", {})
    reason = status.get("reason") or status.get("phase", "Unknown")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            terminated = state["terminated"]
            reason = terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def _pod_row(pod: KubeObject, now: datetime) -> list[Any]:
    status = pod.get("status", {})
    statuses = status.get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    last = [
        c.get("lastState", {}).get("terminated", {}).get("finishedAt")
        for c in statuses
        if c.get("lastState", {}).get("terminated", {}).get("finishedAt")
    ]
    restart_text = str(restarts)
    if restarts and last:
        ago = human_duration((now - parse_time(max(last))).total_seconds())
        restart_text = f"{restarts} ({ago} ago)"
    gates = pod.get("spec", {}).get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        _pod_status(pod),
        restart_text,
        age(pod, now),
        status.get("podIP") or "<none>",
        pod.get("spec", {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}" if gates else "<none>",
    ]


def _node_row(node: KubeObject, now: datetime) -> list[Any]:
    ready = _condition(node, "Ready").get("status")
    status = {"True": "Ready", "False": "NotReady"}.get(str(ready), "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = node.get("metadata", {}).get("labels") or {}
    roles = sorted(
        key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/")
    )
    info = node.get("status", {}).get("nodeInfo") or {}
    addresses = {
        a.get("type"): a.get("address") for a in node.get("status", {}).get("addresses") or []
    }
    return [
        node["metadata"]["name"],
        status,
        ",".join(roles) or "<none>",
        age(node, now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _containers(obj: KubeObject) -> tuple[str, str]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def _selector(obj: KubeObject) -> str:
    labels = obj.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items()) or "<none>"


def _deployment_row(d: KubeObject, now: datetime) -> list[Any]:
    status = d.get("status", {})
    names, images = _containers(d)
    return [
        d["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{d['spec'].get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(d, now),
        names,
        images,
        _selector(d),
    ]


def _replicaset_row(rs: KubeObject, now: datetime) -> list[Any]:
    status = rs.get("status", {})
    names, images = _containers(rs)
    return [
        rs["metadata"]["name"],
        rs["spec"].get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(rs, now),
        names,
        images,
        _selector(rs),
    ]


def _service_row(svc: KubeObject, now: datetime) -> list[Any]:
    spec = svc.get("spec", {})
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    return [
        svc["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
        age(svc, now),
        selector or "<none>",
    ]


def _hpa_row(hpa: KubeObject, now: datetime) -> list[Any]:
    spec, status = hpa.get("spec", {}), hpa.get("status", {})
    current = {}
    for metric in status.get("currentMetrics") or []:
        resource = metric.get("resource") or {}
        value = resource.get("current", {}).get("averageUtilization")
        current[resource.get("name")] = "<unknown>" if value is None else f"{value}%"
    targets = []
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        name = resource.get("name")
        target = resource.get("target", {}).get("averageUtilization")
        targets.append(f"{name}: {current.get(name, '<unknown>')}/{target}%")
    ref = spec.get("scaleTargetRef", {})
    return [
        hpa["metadata"]["name"],
        f"{ref.get('kind')}/{ref.get('name')}",
        ", ".join(targets),
        spec.get("minReplicas", 1),
        spec.get("maxReplicas"),
        status.get("currentReplicas", 0),
        age(hpa, now),
    ]


def _pdb_row(pdb: KubeObject, now: datetime) -> list[Any]:
    spec, status = pdb.get("spec", {}), pdb.get("status", {})
    return [
        pdb["metadata"]["name"],
        str(spec.get("minAvailable", "N/A")),
        str(spec.get("maxUnavailable", "N/A")),
        status.get("disruptionsAllowed", 0),
        age(pdb, now),
    ]


def _event_row(event: KubeObject, now: datetime) -> list[Any]:
    ref = event.get("involvedObject") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
    )
    seen = human_duration((now - parse_time(last)).total_seconds()) if last else "<unknown>"
    return [
        seen,
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}",
        event.get("message", ""),
    ]


def _endpoints_row(ep: KubeObject, now: datetime) -> list[Any]:
    pairs = [
        f"{a.get('ip')}:{p.get('port')}"
        for subset in ep.get("subsets") or []
        for a in subset.get("addresses") or []
        for p in subset.get("ports") or [{}]
    ]
    text = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [ep["metadata"]["name"], text or "<none>", age(ep, now)]


def _namespace_row(ns: KubeObject, now: datetime) -> list[Any]:
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", "Active"), age(ns, now)]


def _ingress_row(ingress: KubeObject, now: datetime) -> list[Any]:
    spec = ingress.get("spec", {})
    hosts = [rule.get("host", "*") for rule in spec.get("rules") or []]
    addresses = [
        entry.get("ip") or entry.get("hostname", "")
        for entry in (ingress.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
    ]
    return [
        ingress["metadata"]["name"],
        spec.get("ingressClassName", "<none>"),
        ",".join(hosts) or "*",
        ",".join(addresses),
        "80, 443" if spec.get("tls") else "80",
        age(ingress, now),
    ]


def _generic_row(obj: KubeObject, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], age(obj, now)]


def _columns(*names: str, wide: tuple[str, ...] = ()) -> list[Column]:
    return [(n, "string", 0) for n in names] + [(n, "string", 1) for n in wide]


TABLES: dict[str, tuple[list[Column], Callable[[KubeObject, datetime], list[Any]]]] = {
    "pods": (
        _columns(
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            wide=("IP", "Node", "Nominated Node", "Readiness Gates"),
        ),
        _pod_row,
    ),
    "nodes": (
        _columns(
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            wide=("Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"),
        ),
        _node_row,
    ),
    "apps/deployments": (
        _columns(
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            wide=("Containers", "Images", "Selector"),
        ),
        _deployment_row,
    ),
    "apps/replicasets": (
        _columns(
            "Name", "Desired", "Current", "Ready", "Age", wide=("Containers", "Images", "Selector")
        ),
        _replicaset_row,
    ),
    "services": (
        _columns("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", wide=("Selector",)),
        _service_row,
    ),
    "autoscaling/horizontalpodautoscalers": (
        _columns("Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"),
        _hpa_row,
    ),
    "policy/poddisruptionbudgets": (
        _columns("Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"),
        _pdb_row,
    ),
    "events": (_columns("Last Seen", "Type", "Reason", "Object", "Message"), _event_row),
    "endpoints": (_columns("Name", "Endpoints", "Age"), _endpoints_row),
    "namespaces": (_columns("Name", "Status", "Age"), _namespace_row),
    "networking.k8s.io/ingresses": (
        _columns("Name", "Class", "Hosts", "Address", "Ports", "Age"),
        _ingress_row,
    ),
}


def _crd_row(crd: KubeObject, now: datetime) -> list[Any]:
    """The CRD registry has no table convertor: upstream's default is Name, Created At."""
    return [crd["metadata"]["name"], crd["metadata"].get("creationTimestamp")]


TABLES[customresources.CRD_KEY] = ([("Name", "string", 0), ("Created At", "date", 0)], _crd_row)


def _custom_table(
    resource: str,
) -> tuple[list[Column], Callable[[KubeObject, datetime], list[Any]]]:
    """A custom resource prints Name and its CRD's additionalPrinterColumns (apiextensions
    tableconvertor); any other kind Name and Age."""
    custom = customresources.by_key(resource)
    if custom is None:
        return _columns("Name", "Age"), _generic_row
    printer = custom.printer_columns
    columns: list[Column] = [("Name", "string", 0)]
    columns += [(column.name, column.type, column.priority) for column in printer]

    def row(obj: KubeObject, now: datetime) -> list[Any]:
        cells: list[Any] = [obj["metadata"]["name"]]
        for column in printer:
            value = customresources.column_value(obj, column.json_path)
            if column.type == "date" and isinstance(value, str):
                value = human_duration((now - parse_time(value)).total_seconds())
            cells.append(value)
        return cells

    return columns, row


def table(
    resource: str,
    items: list[KubeObject],
    now: datetime,
    resource_version: str,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    columns, row = TABLES.get(resource) or _custom_table(resource)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, kind, priority in columns
        ],
        "rows": [
            {"cells": row(item, now), "object": _row_object(item, include_object)} for item in items
        ],
    }


def _row_object(item: KubeObject, include_object: str) -> KubeObject | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return item
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": item.get("metadata", {}),
    }
