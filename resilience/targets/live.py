"""The live target the resilience suites run against, whatever it is.

One object for every suite: the Kubernetes client, the namespace and the
Deployment, the base URL that reaches the service through its ingress, and the
AWS settings boto3 uses. Built from the sandbox's exports or from a kubeconfig
context; the suites never ask which (one code path).

Also here, because every test needs them before and after its fault:

- `health_problems` (pure): why the target is not in its steady state -- the
  Deployment not whole, paused, nodes cordoned or NotReady, too few ready
  endpoints, pods still terminating;
- `wait_healthy`: that check, polled with a bound;
- `take_snapshot` / `restore`: the Deployment's template and strategy and the
  PodDisruptionBudgets before a destructive test, put back after it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.errors import ResilienceError

REQUEST_TIMEOUT = 15.0
POLL_SECONDS = 0.5
FAULT_ENV = "SESSION_STATE_FAULT"
CANARY_LABEL = "harmonyflow.io/suite-canary"


class TargetNotHealthyError(ResilienceError):
    """The target is not in its steady state; the message lists why."""


class KubectlError(ResilienceError):
    """kubectl exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class LiveTarget:
    api: client.ApiClient
    kubeconfig: Path
    context: str
    server: str
    namespace: str
    deployment: str
    service: str
    base_url: str
    service_env: Mapping[str, str] = field(default_factory=dict)
    # For reports and messages only; suites must not branch on it.
    kind: Literal["sandbox", "cluster"] = "cluster"

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def label_selector(self) -> str:
        return f"app={self.deployment}"

    def describe(self) -> str:
        return f"{self.kind} context {self.context} ({self.server}), namespace {self.namespace}"

    def client_env(self) -> dict[str, str]:
        """What kubectl, chaostoolkit-kubernetes, boto3 and the Prometheus and RabbitMQ
        clients need to reach this target."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "KUBERNETES_CONTEXT": self.context,
            **self.service_env,
        }

    def kubectl(self, *args: str, timeout: float = 120.0) -> str:
        """Run the real kubectl against this target (context pinned); raise on failure."""
        command = ["kubectl", "--kubeconfig", str(self.kubeconfig), "--context", self.context]
        env = {**os.environ, **self.client_env()}
        try:
            done = subprocess.run(
                [*command, *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as error:
            raise KubectlError(
                f"kubectl {' '.join(args)}: no answer within {timeout:g}s"
            ) from error
        if done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def set_fault(self, fault: str) -> None:
        """Roll every replica onto one of the reference service's seeded faults
        (`SESSION_STATE_FAULT`); a `destructive` test gets the template put back."""
        container = {"name": self.deployment, "env": [{"name": FAULT_ENV, "value": fault}]}
        client.AppsV1Api(self.api).patch_namespaced_deployment(
            self.deployment,
            self.namespace,
            {"spec": {"template": {"spec": {"containers": [container]}}}},
            _request_timeout=REQUEST_TIMEOUT,
        )

    def read_deployment(self) -> dict[str, Any]:
        """The live Deployment as API JSON (camelCase)."""
        body = self.apps.read_namespaced_deployment(
            self.deployment, self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        found: dict[str, Any] = self.api.sanitize_for_serialization(body)  # type: ignore[no-untyped-call]
        return found

    def read_pdbs(self) -> list[dict[str, Any]]:
        answer = client.PolicyV1Api(self.api).list_namespaced_pod_disruption_budget(
            self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        return [_json(self.api, item) for item in answer.items or []]

    def read_network_policies(self) -> list[dict[str, Any]]:
        """The namespace's NetworkPolicies as API JSON (camelCase)."""
        answer = client.NetworkingV1Api(self.api).list_namespaced_network_policy(
            self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        return [_json(self.api, item) for item in answer.items or []]

    def ready_endpoints(self) -> int:
        """Distinct ready addresses in the Service's EndpointSlices (what the ingress uses)."""
        slices = client.DiscoveryV1Api(self.api).list_namespaced_endpoint_slice(
            self.namespace,
            label_selector=f"kubernetes.io/service-name={self.service}",
            _request_timeout=REQUEST_TIMEOUT,
        )
        return len(
            {
                address
                for endpoint_slice in slices.items or []
                for endpoint in endpoint_slice.endpoints or []
                if endpoint.conditions is None or endpoint.conditions.ready is not False
                for address in endpoint.addresses or []
            }
        )


# ---- steady state ----


def health_problems(
    deployment: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    ready_endpoints: int,
    canaries: Sequence[str] = (),
    terminating: Sequence[str] = (),
) -> list[str]:
    """Why the target is not in its steady state; empty when it is.

    Pods still terminating count against it: the Deployment's status leaves them out,
    yet they may still answer requests (until the ingress drops them) and their watch
    events would land in the next test's timeline.

    >>> health_problems({"metadata": {"name": "web", "generation": 2},
    ...                  "spec": {"replicas": 3},
    ...                  "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
    ...                             "readyReplicas": 2, "availableReplicas": 2}}, [], 2)
    ['Deployment web: 2 of 3 replicas available (3 updated, 2 ready, 3 pods)', \
'only 2 ready endpoints for 3 replicas']
    """
    problems = []
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = metadata.get("name", "?")
    desired = int(spec.get("replicas", 1))
    counts = {
        key: int(status.get(key) or 0)
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    }
    if int(status.get("observedGeneration") or 0) < int(metadata.get("generation") or 0):
        problems.append(f"Deployment {name}: the controller has not seen its latest spec yet")
    if any(value != desired for value in counts.values()):
        problems.append(
            f"Deployment {name}: {counts['availableReplicas']} of {desired} replicas available "
            f"({counts['updatedReplicas']} updated, {counts['readyReplicas']} ready, "
            f"{counts['replicas']} pods)"
        )
    if spec.get("paused"):
        problems.append(f"Deployment {name}: paused (kubectl rollout resume)")
    cordoned = sorted(
        n["metadata"]["name"] for n in nodes if (n.get("spec") or {}).get("unschedulable")
    )
    if cordoned:
        problems.append(f"nodes cordoned: {', '.join(cordoned)} (kubectl uncordon)")
    not_ready = sorted(n["metadata"]["name"] for n in nodes if not _node_ready(n))
    if not_ready:
        problems.append(f"nodes not Ready: {', '.join(not_ready)}")
    if ready_endpoints < desired:
        problems.append(f"only {ready_endpoints} ready endpoints for {desired} replicas")
    if canaries:
        problems.append(f"suite canaries left behind: {', '.join(canaries)}")
    if terminating:
        problems.append(f"pods still terminating: {', '.join(terminating)}")
    return problems


def terminating_pods(pods: Iterable[Any]) -> list[str]:
    """The pods being deleted (Kubernetes models), by name.

    The Deployment's status leaves them out, yet they may still answer requests until the
    ingress drops them: a test that waits for a rollout waits for these to be gone too.
    """
    return sorted(p.metadata.name for p in pods if p.metadata.deletion_timestamp is not None)


def current_problems(target: LiveTarget) -> list[str]:
    deployment = target.read_deployment()
    nodes = target.core.list_node(_request_timeout=REQUEST_TIMEOUT)
    core: Any = target.core
    pods = core.list_namespaced_pod(
        target.namespace, label_selector=target.label_selector, _request_timeout=REQUEST_TIMEOUT
    )
    return health_problems(
        deployment,
        [_json(target.api, n) for n in nodes.items or []],
        target.ready_endpoints(),
        canaries_left(target),
        terminating_pods(pods.items or []),
    )


def canaries_left(target: LiveTarget) -> list[str]:
    """Suite canary Deployments and pods still present (a canary's pods outlive it a while)."""
    apps: Any = target.apps
    core: Any = target.core
    deployments = apps.list_namespaced_deployment(
        target.namespace, label_selector=CANARY_LABEL, _request_timeout=REQUEST_TIMEOUT
    )
    pods = core.list_namespaced_pod(
        target.namespace, label_selector=CANARY_LABEL, _request_timeout=REQUEST_TIMEOUT
    )
    return [f"deployment/{d.metadata.name}" for d in deployments.items or []] + [
        f"pod/{p.metadata.name}" for p in pods.items or []
    ]


def wait_healthy(target: LiveTarget, timeout: float) -> float:
    """Poll until the target is in its steady state; seconds waited, or TargetNotHealthyError."""
    began = time.monotonic()
    deadline = began + timeout
    problems = ["not checked yet"]
    while time.monotonic() < deadline:
        problems = current_problems(target)
        if not problems:
            return time.monotonic() - began
        time.sleep(POLL_SECONDS)
    raise TargetNotHealthyError(
        f"{target.describe()}: not in its steady state after {timeout:g}s: " + "; ".join(problems)
    )


def _json(api: client.ApiClient, model: Any) -> dict[str, Any]:
    found: dict[str, Any] = api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
    return found


def _node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# ---- destructive tests: snapshot and restore ----


@dataclass(frozen=True)
class TargetSnapshot:
    """What a destructive test may change: the Deployment's template, strategy and pause, and
    the PodDisruptionBudgets (by name, spec only)."""

    template: Mapping[str, Any]
    strategy: Mapping[str, Any]
    paused: bool
    pdbs: Mapping[str, Mapping[str, Any]]


def take_snapshot(target: LiveTarget) -> TargetSnapshot:
    spec = target.read_deployment()["spec"]
    pdbs = {p["metadata"]["name"]: p for p in target.read_pdbs()}
    return TargetSnapshot(
        template=spec["template"],
        strategy=spec.get("strategy") or {},
        paused=bool(spec.get("paused")),
        pdbs=pdbs,
    )


def restore(target: LiveTarget, snapshot: TargetSnapshot, timeout: float) -> list[str]:
    """Put the snapshot back, delete suite canaries, wait (bounded) until healthy.

    Returns what had to be restored (empty: nothing had changed).
    """
    restored = _restore_deployment(target, snapshot)
    restored += _restore_pdbs(target, snapshot)
    apps: Any = target.apps
    canaries = apps.list_namespaced_deployment(
        target.namespace, label_selector=CANARY_LABEL, _request_timeout=REQUEST_TIMEOUT
    )
    for canary in canaries.items or []:
        delete_canary_and_wait(target, canary.metadata.name)
        restored.append(f"deleted canary {canary.metadata.name}")
    wait_healthy(target, timeout)
    return restored


def _restore_deployment(target: LiveTarget, snapshot: TargetSnapshot) -> list[str]:
    live = target.read_deployment()
    spec = live["spec"]
    changed = []
    if spec["template"] != snapshot.template:
        changed.append("pod template")
    if (spec.get("strategy") or {}) != snapshot.strategy:
        changed.append("strategy")
    if bool(spec.get("paused")) != snapshot.paused:
        changed.append("paused")
    if not changed:
        return []
    spec["template"] = dict(snapshot.template)
    spec["strategy"] = dict(snapshot.strategy)
    spec["paused"] = snapshot.paused
    live.pop("status", None)
    apps: Any = target.apps
    apps.replace_namespaced_deployment(
        target.deployment, target.namespace, live, _request_timeout=REQUEST_TIMEOUT
    )
    return [f"Deployment {target.deployment}: {', '.join(changed)} put back"]


def _restore_pdbs(target: LiveTarget, snapshot: TargetSnapshot) -> list[str]:
    live = {p["metadata"]["name"]: p for p in target.read_pdbs()}
    policy: Any = client.PolicyV1Api(target.api)
    restored = []
    for name, pdb in snapshot.pdbs.items():
        if name in live and live[name].get("spec") == pdb.get("spec"):
            continue
        body = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": (pdb.get("metadata") or {}).get("labels") or {}},
            "spec": pdb.get("spec"),
        }
        if name in live:
            policy.delete_namespaced_pod_disruption_budget(
                name, target.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        policy.create_namespaced_pod_disruption_budget(
            target.namespace, body, _request_timeout=REQUEST_TIMEOUT
        )
        restored.append(f"PodDisruptionBudget {name} put back")
    return restored


def delete_canary_and_wait(target: LiveTarget, name: str, timeout: float = 60.0) -> None:
    """Delete a canary Deployment and wait (bounded) until no canary pod is left.

    No grace period: it is a test fixture, and its pods must not linger into the
    next test's counts.
    """
    core: Any = target.core
    try:
        target.apps.delete_namespaced_deployment(
            name,
            target.namespace,
            propagation_policy="Foreground",
            grace_period_seconds=0,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status != 404:
            raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(
            target.namespace,
            label_selector=CANARY_LABEL,
            _request_timeout=REQUEST_TIMEOUT,
        )
        for pod in pods.items or []:
            if pod.metadata.deletion_timestamp is None:
                with contextlib.suppress(ApiException):
                    core.delete_namespaced_pod(
                        pod.metadata.name,
                        target.namespace,
                        grace_period_seconds=0,
                        _request_timeout=REQUEST_TIMEOUT,
                    )
        if not pods.items:
            return
        time.sleep(POLL_SECONDS)
    raise TargetNotHealthyError(f"canary {name}: pods still present {timeout:g}s after deletion")


def wait_until(
    condition: Callable[[], bool], seconds: float, what: str, interval: float = POLL_SECONDS
) -> float:
    """Seconds until `condition()` held; an AssertionError naming `what` after `seconds`."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if condition():
            return time.monotonic() - began
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {seconds:.0f} s")
