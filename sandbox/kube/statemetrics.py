"""The control plane's own metrics: kube-state-metrics' series, computed from the store.

On EKS, Prometheus learns about Deployments, HPAs, pods, nodes and PDBs from
kube-state-metrics (v2). The sandbox serves the same series — the same names,
labels and values — at the API server's `GET /metrics`, so that the alert rules
of `deploy/monitoring/rules/` run unchanged on both. Alongside them:
`apiserver_request_total{verb,resource,code}` (the API server's own counter) and
`pg_replication_lag_seconds` (postgres_exporter's name) for the RDS pair.

Everything is computed on each scrape from a snapshot of the store; `render` is a
pure function of that snapshot, tested against a table.

Deviations, all additive: `kube_node_labels` carries every node label, as
kube-state-metrics does with `--metric-labels-allowlist=nodes=[*]` (the dashboard
groups pods by `label_topology_kubernetes_io_zone`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KubeObject = dict[str, Any]
Labels = tuple[tuple[str, str], ...]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CONDITION_STATUSES = ("true", "false", "unknown")


@dataclass(frozen=True)
class ClusterState:
    """What one scrape reads: the store's objects and the API server's own counters."""

    deployments: Sequence[KubeObject] = ()
    hpas: Sequence[KubeObject] = ()
    pods: Sequence[KubeObject] = ()
    nodes: Sequence[KubeObject] = ()
    pdbs: Sequence[KubeObject] = ()
    # (verb, resource, code) -> requests served
    requests: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    # standby server ("host:port") -> seconds behind the primary; absent when unknown
    replication_lag: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    type: str
    samples: tuple[tuple[Labels, float], ...]


def render(state: ClusterState) -> str:
    """Prometheus text exposition (0.0.4) of every family, in a stable order.

    >>> print(render(ClusterState(nodes=[{"metadata": {"name": "n1"}, "spec": {}}])), end="")
    # HELP kube_node_spec_unschedulable Whether a node can schedule new pods.
    # TYPE kube_node_spec_unschedulable gauge
    kube_node_spec_unschedulable{node="n1"} 0
    # HELP kube_node_labels Kubernetes labels converted to Prometheus labels.
    # TYPE kube_node_labels gauge
    kube_node_labels{node="n1"} 1
    """
    return "".join(_render_family(f) for f in families(state) if f.samples)


def families(state: ClusterState) -> list[Family]:
    return [
        *_deployment_families(state.deployments),
        *_hpa_families(state.hpas),
        *_pod_families(state.pods),
        *_node_families(state.nodes),
        *_pdb_families(state.pdbs),
        Family(
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, resource, and HTTP code.",
            "counter",
            tuple(
                (_labels(verb=verb, resource=resource, code=code), float(count))
                for (verb, resource, code), count in sorted(state.requests.items())
            ),
        ),
        Family(
            "pg_replication_lag_seconds",
            "Replication lag behind master in seconds",
            "gauge",
            tuple(
                (_labels(server=server), float(lag))
                for server, lag in sorted(state.replication_lag.items())
            ),
        ),
    ]


# ---- kube-state-metrics families ------------------------------------------------------


def _deployment_families(deployments: Sequence[KubeObject]) -> list[Family]:
    def series(field_name: str, default: int = 0) -> tuple[tuple[Labels, float], ...]:
        return tuple(
            (_object_labels(d, "deployment"), float(_status(d).get(field_name) or default))
            for d in _sorted(deployments)
        )

    def spec_replicas(d: KubeObject) -> float:
        replicas = (d.get("spec") or {}).get("replicas")
        return float(1 if replicas is None else replicas)

    return [
        Family(
            "kube_deployment_spec_replicas",
            "Number of desired pods for a deployment.",
            "gauge",
            tuple(
                (_object_labels(d, "deployment"), spec_replicas(d)) for d in _sorted(deployments)
            ),
        ),
        Family(
            "kube_deployment_status_replicas",
            "The number of replicas per deployment.",
            "gauge",
            series("replicas"),
        ),
        Family(
            "kube_deployment_status_replicas_available",
            "The number of available replicas per deployment.",
            "gauge",
            series("availableReplicas"),
        ),
        Family(
            "kube_deployment_status_replicas_unavailable",
            "The number of unavailable replicas per deployment.",
            "gauge",
            series("unavailableReplicas"),
        ),
        Family(
            "kube_deployment_status_replicas_updated",
            "The number of updated replicas per deployment.",
            "gauge",
            series("updatedReplicas"),
        ),
    ]


def _hpa_families(hpas: Sequence[KubeObject]) -> list[Family]:
    def value(hpa: KubeObject, part: str, key: str, default: int = 0) -> float:
        found = (hpa.get(part) or {}).get(key)
        return float(default if found is None else found)

    def family(name: str, help_text: str, part: str, key: str, default: int = 0) -> Family:
        return Family(
            name,
            help_text,
            "gauge",
            tuple(
                (_object_labels(h, "horizontalpodautoscaler"), value(h, part, key, default))
                for h in _sorted(hpas)
            ),
        )

    return [
        family(
            "kube_horizontalpodautoscaler_spec_max_replicas",
            "Upper limit for the number of pods that can be set by the autoscaler; "
            "cannot be smaller than MinReplicas.",
            "spec",
            "maxReplicas",
        ),
        family(
            "kube_horizontalpodautoscaler_spec_min_replicas",
            "Lower limit for the number of pods that can be set by the autoscaler, default 1.",
            "spec",
            "minReplicas",
            default=1,
        ),
        family(
            "kube_horizontalpodautoscaler_status_current_replicas",
            "Current number of replicas of pods managed by this autoscaler.",
            "status",
            "currentReplicas",
        ),
        family(
            "kube_horizontalpodautoscaler_status_desired_replicas",
            "Desired number of replicas of pods managed by this autoscaler.",
            "status",
            "desiredReplicas",
        ),
    ]


def _pod_families(pods: Sequence[KubeObject]) -> list[Family]:
    info: list[tuple[Labels, float]] = []
    ready: list[tuple[Labels, float]] = []
    restarts: list[tuple[Labels, float]] = []
    for pod in _sorted(pods):
        metadata, spec, status = pod["metadata"], pod.get("spec") or {}, _status(pod)
        base = {"namespace": metadata.get("namespace", ""), "pod": metadata["name"]}
        uid = {"uid": metadata.get("uid", "")}
        owner: KubeObject = next(iter(metadata.get("ownerReferences") or []), {})
        info.append(
            (
                _labels(
                    **base,
                    **uid,
                    host_ip=status.get("hostIP", ""),
                    pod_ip=status.get("podIP", ""),
                    node=spec.get("nodeName", ""),
                    created_by_kind=owner.get("kind", "<none>"),
                    created_by_name=owner.get("name", "<none>"),
                    priority_class=spec.get("priorityClassName", ""),
                    host_network=str(bool(spec.get("hostNetwork"))).lower(),
                ),
                1.0,
            )
        )
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                ready.extend(_condition_samples(base | uid, condition.get("status", "")))
        for container in status.get("containerStatuses") or []:
            restarts.append(
                (
                    _labels(**base, **uid, container=container.get("name", "")),
                    float(container.get("restartCount") or 0),
                )
            )
    return [
        Family("kube_pod_info", "Information about pod.", "gauge", tuple(info)),
        Family(
            "kube_pod_status_ready",
            "Describes whether the pod is ready to serve requests.",
            "gauge",
            tuple(ready),
        ),
        Family(
            "kube_pod_container_status_restarts_total",
            "The number of container restarts per container.",
            "counter",
            tuple(restarts),
        ),
    ]


def _node_families(nodes: Sequence[KubeObject]) -> list[Family]:
    conditions: list[tuple[Labels, float]] = []
    unschedulable: list[tuple[Labels, float]] = []
    labels: list[tuple[Labels, float]] = []
    for node in _sorted(nodes):
        name = node["metadata"]["name"]
        for condition in _status(node).get("conditions") or []:
            conditions.extend(
                _condition_samples(
                    {"node": name, "condition": condition.get("type", "")},
                    condition.get("status", ""),
                    label="status",
                )
            )
        unschedulable.append(
            (_labels(node=name), 1.0 if (node.get("spec") or {}).get("unschedulable") else 0.0)
        )
        node_labels = {
            f"label_{_sanitize(k)}": v for k, v in (node["metadata"].get("labels") or {}).items()
        }
        labels.append((_labels(node=name, **node_labels), 1.0))
    return [
        Family(
            "kube_node_status_condition",
            "The condition of a cluster node.",
            "gauge",
            tuple(conditions),
        ),
        Family(
            "kube_node_spec_unschedulable",
            "Whether a node can schedule new pods.",
            "gauge",
            tuple(unschedulable),
        ),
        Family(
            "kube_node_labels",
            "Kubernetes labels converted to Prometheus labels.",
            "gauge",
            tuple(labels),
        ),
    ]


def _pdb_families(pdbs: Sequence[KubeObject]) -> list[Family]:
    def family(name: str, help_text: str, key: str) -> Family:
        return Family(
            name,
            help_text,
            "gauge",
            tuple(
                (_object_labels(p, "poddisruptionbudget"), float(_status(p).get(key) or 0))
                for p in _sorted(pdbs)
            ),
        )

    return [
        family(
            "kube_poddisruptionbudget_status_current_healthy",
            "Current number of healthy pods",
            "currentHealthy",
        ),
        family(
            "kube_poddisruptionbudget_status_desired_healthy",
            "Minimum desired number of healthy pods",
            "desiredHealthy",
        ),
        family(
            "kube_poddisruptionbudget_status_pod_disruptions_allowed",
            "Number of pod disruptions that are currently allowed",
            "disruptionsAllowed",
        ),
        family(
            "kube_poddisruptionbudget_status_expected_pods",
            "Total number of pods counted by this disruption budget",
            "expectedPods",
        ),
    ]


# ---- helpers ------------------------------------------------------------------------


def _condition_samples(
    base: Mapping[str, str], status: str, label: str = "condition"
) -> Iterator[tuple[Labels, float]]:
    """kube-state-metrics' three series per condition: 1 for its status, 0 for the others."""
    for candidate in CONDITION_STATUSES:
        yield _labels(**base, **{label: candidate}), 1.0 if status.lower() == candidate else 0.0


def _object_labels(obj: KubeObject, kind_label: str) -> Labels:
    metadata = obj["metadata"]
    return _labels(namespace=metadata.get("namespace", ""), **{kind_label: metadata["name"]})


def _status(obj: KubeObject) -> KubeObject:
    status: KubeObject = obj.get("status") or {}
    return status


def _sorted(objects: Iterable[KubeObject]) -> list[KubeObject]:
    return sorted(
        objects, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
    )


def _labels(**labels: str) -> Labels:
    return tuple(labels.items())


_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _sanitize(name: str) -> str:
    """A Kubernetes label key as kube-state-metrics turns it into a Prometheus label name.

    >>> _sanitize("topology.kubernetes.io/zone")
    'topology_kubernetes_io_zone'
    """
    return _INVALID.sub("_", name)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _render_family(family: Family) -> str:
    lines = [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.type}"]
    for labels, value in family.samples:
        text = ",".join(f'{key}="{_escape(str(v))}"' for key, v in labels)
        lines.append(f"{family.name}{{{text}}} {_format_value(value)}")
    return "\n".join(lines) + "\n"


def snapshot_state(
    store: Any,
    requests: Mapping[tuple[str, str, str], int],
    replication_lag: Mapping[str, float],
) -> ClusterState:
    """The store's objects as one scrape sees them (read-only views, not copies)."""
    return ClusterState(
        deployments=store.snapshot("apps/deployments"),
        hpas=store.snapshot("autoscaling/horizontalpodautoscalers"),
        pods=store.snapshot("pods"),
        nodes=store.snapshot("nodes"),
        pdbs=store.snapshot("policy/poddisruptionbudgets"),
        requests=dict(requests),
        replication_lag=dict(replication_lag),
    )
