"""PodDisruptionBudgets: the controller that keeps their status, and the Eviction API.

The controller (`pkg/controller/disruption/disruption.go`) computes, per PDB,
expectedPods, desiredHealthy, currentHealthy and disruptionsAllowed (reference 4.4),
expires `disruptedPods` entries after the deletion timeout (2 min) and keeps the
`DisruptionAllowed` condition. Scale-based budgets (maxUnavailable, minAvailable %)
read the scale of the pods' controllers through ownerReferences: a ReplicaSet
owned by a Deployment counts the Deployment's replicas.

`evict()` is the server side of `POST pods/<name>/eviction`
(`pkg/registry/core/pod/storage/eviction.go`, reference 4.3); its decision is the
pure `decide_eviction()`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.kube.clock import Clock, parse_time, rfc3339
from sandbox.kube.controllers.runtime import emit_event, namespaced_key
from sandbox.kube.errors import (
    ApiError,
    Cause,
    bad_request,
    conflict,
    forbidden,
    too_many_requests,
)
from sandbox.kube.podutil import is_pod_ready, is_terminating, with_condition
from sandbox.kube.selectors import LabelSelector, selector_from_match
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]
IntOrPercent = int | str

PDBS = "policy/poddisruptionbudgets"
MAX_DISRUPTED_POD_SIZE = 2000
EVICTION_REJECTED = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
    "not support."
)
MULTIPLE_PDBS_STATUS: dict[str, Any] = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": MULTIPLE_PDBS,
    "code": 500,
}
SCALE_OWNERS = ("apps/deployments", "apps/replicasets", "apps/statefulsets")


# ---- the budget math (reference 4.4) ----


def scaled_value(value: IntOrPercent, total: int, *, round_up: bool = True) -> int:
    """intstr.GetScaledValueFromIntOrPercent.

    >>> scaled_value("50%", 5), scaled_value("50%", 5, round_up=False), scaled_value(2, 5)
    (3, 2, 2)
    """
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%") or not text[:-1].isdigit():
        if text.isdigit():
            return int(text)
        raise ValueError(f"invalid value for IntOrString: invalid value {text!r}")
    share = int(text[:-1]) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


def uses_controller_scale(spec: Mapping[str, Any]) -> bool:
    """Whether expectedCount comes from the controllers' scale (maxUnavailable, minAvailable %)."""
    if spec.get("maxUnavailable") is not None:
        return True
    minimum = spec.get("minAvailable")
    return isinstance(minimum, str) and minimum.endswith("%")


def expected_and_desired(
    spec: Mapping[str, Any], matching_pods: int, controller_scale: int
) -> tuple[int, int]:
    """(expectedCount, desiredHealthy) for one PDB spec.

    | spec                   | expectedCount     | desiredHealthy                        |
    |------------------------|-------------------|---------------------------------------|
    | maxUnavailable n or %  | controller_scale  | max(0, expected - ceil(n of expected)) |
    | minAvailable n         | matching_pods     | n                                     |
    | minAvailable %         | controller_scale  | ceil(% of expected)                   |

    >>> expected_and_desired({"maxUnavailable": "25%"}, 3, 3)
    (3, 2)
    >>> expected_and_desired({"minAvailable": 2}, 3, 99)
    (3, 2)
    """
    max_unavailable = spec.get("maxUnavailable")
    minimum = spec.get("minAvailable")
    if max_unavailable is not None:
        expected = controller_scale
        return expected, max(0, expected - scaled_value(max_unavailable, expected))
    if minimum is not None and uses_controller_scale(spec):
        return controller_scale, scaled_value(minimum, controller_scale)
    if minimum is not None:
        return matching_pods, scaled_value(minimum, matching_pods)
    return 0, 0


def live_disrupted_pods(
    pods: Sequence[Mapping[str, Any]],
    disrupted: Mapping[str, str],
    now: datetime,
    timeout_seconds: float,
) -> tuple[dict[str, str], datetime | None]:
    """buildDisruptedPodMap: entries still within the timeout for pods not yet deleting.

    Returns the kept entries and when the earliest of them expires (to look again then).

    >>> now = parse_time("2026-01-01T00:02:00Z")
    >>> pods = [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]
    >>> live_disrupted_pods(pods, {"a": "2025-12-31T23:59:30Z", "b": "2026-01-01T00:01:00Z",
    ...                            "gone": "2026-01-01T00:01:00Z"}, now, 120)[0]
    {'b': '2026-01-01T00:01:00Z'}
    """
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "")
        if is_terminating(pod) or name not in disrupted:
            continue
        expires = parse_time(disrupted[name]) + timedelta(seconds=timeout_seconds)
        if expires < now:
            continue
        kept[name] = disrupted[name]
        recheck = expires if recheck is None or expires < recheck else recheck
    return kept, recheck


def count_healthy(
    pods: Sequence[Mapping[str, Any]],
    disrupted: Mapping[str, str],
    now: datetime,
    timeout_seconds: float,
) -> int:
    """countHealthyPods: Ready, not deleting, not recently evicted."""
    healthy = 0
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "")
        if is_terminating(pod):
            continue
        if (
            name in disrupted
            and parse_time(disrupted[name]) + timedelta(seconds=timeout_seconds) > now
        ):
            continue
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def disruption_allowed_condition(allowed: int, observed_generation: int) -> KubeObject:
    """pdbhelper.UpdateDisruptionAllowedCondition (without lastTransitionTime)."""
    sufficient = allowed > 0
    return {
        "type": "DisruptionAllowed",
        "status": "True" if sufficient else "False",
        "observedGeneration": observed_generation,
        "reason": "SufficientPods" if sufficient else "InsufficientPods",
        "message": "",
    }


def pdb_status(
    old_status: Mapping[str, Any],
    generation: int,
    current_healthy: int,
    desired_healthy: int,
    expected_pods: int,
    disrupted_pods: Mapping[str, str],
    now: str,
) -> KubeObject:
    """The status the controller writes (updatePdbStatus).

    >>> status = pdb_status({}, 1, 3, 2, 3, {}, "T")
    >>> status["disruptionsAllowed"], status["conditions"][0]["reason"]
    (1, 'SufficientPods')
    >>> pdb_status({}, 1, 3, 2, 0, {}, "T")["disruptionsAllowed"]  # nothing expected yet
    0
    """
    allowed = current_healthy - desired_healthy
    if expected_pods <= 0 or allowed <= 0:
        allowed = 0
    status: KubeObject = {"observedGeneration": generation}
    if disrupted_pods:
        status["disruptedPods"] = dict(disrupted_pods)
    status.update(
        disruptionsAllowed=allowed,
        currentHealthy=current_healthy,
        desiredHealthy=desired_healthy,
        expectedPods=expected_pods,
    )
    status["conditions"] = with_condition(
        old_status.get("conditions") or [], disruption_allowed_condition(allowed, generation), now
    )
    return status


def failed_status(old_status: Mapping[str, Any], message: str, now: str) -> KubeObject:
    """failSafe: no disruptions allowed, DisruptionAllowed=False reason SyncFailed."""
    status = dict(old_status)
    status["disruptionsAllowed"] = 0
    for field_name in ("currentHealthy", "desiredHealthy", "expectedPods"):
        status.setdefault(field_name, 0)
    condition = {
        "type": "DisruptionAllowed",
        "status": "False",
        "observedGeneration": int(old_status.get("observedGeneration") or 0),
        "reason": "SyncFailed",
        "message": message,
    }
    status["conditions"] = with_condition(old_status.get("conditions") or [], condition, now)
    return status


def pdb_selector(pdb: Mapping[str, Any]) -> LabelSelector | None:
    """policy/v1: a null selector matches nothing, `{}` every pod in the namespace."""
    return selector_from_match((pdb.get("spec") or {}).get("selector"))


def matching_budgets(
    pod: Mapping[str, Any], pdbs: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    metadata = pod.get("metadata") or {}
    result = []
    for pdb in pdbs:
        if (pdb.get("metadata") or {}).get("namespace") != metadata.get("namespace"):
            continue
        selector = pdb_selector(pdb)
        if selector is not None and selector.matches(metadata.get("labels")):
            result.append(pdb)
    return result


# ---- the eviction decision (reference 4.3) ----


@dataclass(frozen=True)
class EvictionDecision:
    """What the eviction subresource does: delete (charging `charge`, a PDB name), or refuse
    by raising `error`, or (several PDBs) answer `answer`, a Failure Status with code 500,
    which upstream returns as the result object rather than as an error."""

    allowed: bool
    reason: str
    charge: str | None = None
    error: ApiError | None = None
    answer: dict[str, Any] | None = None


def can_ignore_pdb(pod: Mapping[str, Any]) -> bool:
    """canIgnorePDB: Succeeded, Failed and Pending pods, and pods already deleting."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or is_terminating(pod)


def budget_refusal(pdb: Mapping[str, Any]) -> ApiError | None:
    """checkAndDecrement's checks, in order; None when one disruption may be taken."""
    metadata, status = pdb.get("metadata") or {}, pdb.get("status") or {}
    name = metadata.get("name", "")
    if int(status.get("observedGeneration") or 0) < int(metadata.get("generation") or 0):
        cause = Cause(
            "DisruptionBudget",
            f"The disruption budget {name} is still being processed by the server.",
        )
        return too_many_requests(EVICTION_REJECTED, [cause], retry_after_seconds=10)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        return forbidden(
            f'poddisruptionbudgets.policy "{name}" is forbidden: '
            "pdb disruptions allowed is negative"
        )
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
        return forbidden(
            f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map '
            "too big - too many evictions not confirmed by PDB controller"
        )
    if allowed == 0:
        cause = Cause(
            "DisruptionBudget",
            f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
            f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently",
        )
        return too_many_requests(EVICTION_REJECTED, [cause])
    return None


def decide_eviction(pod: Mapping[str, Any], pdbs: Sequence[Mapping[str, Any]]) -> EvictionDecision:
    """Whether evicting `pod` is allowed, given the PDBs of its namespace.

    Worked example: a Ready Running pod covered by one PDB whose status says
    desiredHealthy 2, currentHealthy 2, disruptionsAllowed 0 is refused with 429 and the
    cause "The disruption budget web needs 2 healthy pods and has 2 currently"; the same
    pod not Ready is deleted without charging the budget only if currentHealthy >=
    desiredHealthy > 0 (IfHealthyBudget) or the PDB says AlwaysAllow.
    """
    if can_ignore_pdb(pod):
        return EvictionDecision(True, "pod is terminal, pending or already deleting")
    budgets = matching_budgets(pod, pdbs)
    if len(budgets) > 1:
        return EvictionDecision(False, "more than one budget", answer=dict(MULTIPLE_PDBS_STATUS))
    if not budgets:
        return EvictionDecision(True, "no budget covers the pod")
    pdb = budgets[0]
    name = (pdb.get("metadata") or {}).get("name", "")
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    if not is_pod_ready(pod):
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return EvictionDecision(True, "unhealthy pod, policy AlwaysAllow")
        desired = int(status.get("desiredHealthy") or 0)
        if int(status.get("currentHealthy") or 0) >= desired > 0:
            return EvictionDecision(True, "unhealthy pod, budget already healthy")
    refusal = budget_refusal(pdb)
    if refusal is not None:
        return EvictionDecision(False, "budget exhausted", error=refusal)
    return EvictionDecision(True, "budget allows one disruption", charge=name)


def charge_budget(status: Mapping[str, Any], pod_name: str, now: str) -> KubeObject:
    """checkAndDecrement's write: one disruption fewer, the pod recorded as disrupted.

    >>> charge_budget({"disruptionsAllowed": 1}, "web-1", "T")["disruptedPods"]
    {'web-1': 'T'}
    """
    charged = dict(status)
    charged["disruptionsAllowed"] = int(status.get("disruptionsAllowed") or 0) - 1
    if charged["disruptionsAllowed"] == 0:
        generation = int(status.get("observedGeneration") or 0)
        charged["conditions"] = with_condition(
            status.get("conditions") or [], disruption_allowed_condition(0, generation), now
        )
    charged["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now}
    return charged


SUCCESS_STATUS: dict[str, Any] = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Success",
    "code": 201,
}


def evict(
    store: Store,
    clock: Clock,
    settings: ControlPlaneSettings,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """`POST /api/v1/namespaces/<ns>/pods/<name>/eviction`: the Status to answer with 201.

    Raises ApiError: 400 name mismatch, 404 no pod, 429 budget (with a DisruptionBudget
    cause; retryAfterSeconds 10 while the PDB controller has not caught up), 409 when
    deleteOptions.preconditions do not hold. When several PDBs cover the pod it returns
    upstream's Failure Status with `code: 500` (answer with HTTP status = `code`).
    `deleteOptions.gracePeriodSeconds` and `dryRun: ["All"]` are honoured.
    """
    if (body.get("metadata") or {}).get("name") != name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    pod = store.get("pods", namespace, name)
    decision = decide_eviction(pod, store.list(PDBS, namespace=namespace))
    if decision.error is not None:
        raise decision.error
    if decision.answer is not None:
        return dict(decision.answer)
    if options.get("dryRun"):
        return dict(SUCCESS_STATUS)
    _check_preconditions(pod, options.get("preconditions") or {})
    now = rfc3339(clock.now())
    if decision.charge is not None:

        def take_one(pdb: KubeObject) -> None:
            pdb["status"] = charge_budget(pdb.get("status") or {}, name, now)

        store.mutate(PDBS, namespace, decision.charge, take_one, subresource="status")
    _add_condition_and_delete(store, pod, options, now)
    return dict(SUCCESS_STATUS)


def _check_preconditions(pod: Mapping[str, Any], preconditions: Mapping[str, Any]) -> None:
    metadata = pod["metadata"]
    uid, version = preconditions.get("uid"), preconditions.get("resourceVersion")
    if uid and uid != metadata.get("uid"):
        raise conflict(
            "Pod",
            metadata["name"],
            detail=(
                f"the UID in the precondition ({uid}) does not match the UID in record "
                f"({metadata.get('uid')}). The object might have been deleted and then recreated"
            ),
        )
    if version and str(version) != metadata.get("resourceVersion"):
        raise conflict(
            "Pod",
            metadata["name"],
            detail=(
                f"the ResourceVersion in the precondition ({version}) does not match the "
                f"ResourceVersion in record ({metadata.get('resourceVersion')}). The object might "
                "have been modified"
            ),
        )


def _add_condition_and_delete(
    store: Store, pod: Mapping[str, Any], options: Mapping[str, Any], now: str
) -> None:
    """addConditionAndDeletePod: DisruptionTarget=True, then a normal graceful delete."""
    metadata = pod["metadata"]
    target = {
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": None,
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    }

    def mark(obj: KubeObject) -> None:
        status = obj.setdefault("status", {})
        status["conditions"] = with_condition(status.get("conditions") or [], target, now)

    updated = store.mutate(
        "pods", metadata["namespace"], metadata["name"], mark, subresource="status"
    )
    preconditions = options.get("preconditions") or {}
    grace = options.get("gracePeriodSeconds")
    store.delete(
        "pods",
        metadata["namespace"],
        metadata["name"],
        grace_period_seconds=None if grace is None else int(grace),
        uid=preconditions.get("uid") or None,
        # the caller's resourceVersion held before our condition write, which moved it on
        resource_version=(
            updated["metadata"]["resourceVersion"] if preconditions.get("resourceVersion") else None
        ),
    )


# ---- the controller ----


class ScaleLookupError(Exception):
    """The expected pod count cannot be computed (upstream's "found no controllers ...")."""


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


class DisruptionController:
    """Keeps the status of every PodDisruptionBudget."""

    name = "disruption"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._selectors: dict[tuple[str, str], LabelSelector | None] = {}

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        metadata = change.object.get("metadata") or {}
        namespace = metadata.get("namespace", "")
        if change.resource == PDBS:
            key = (namespace, metadata.get("name", ""))
            if change.type == DELETED:
                self._selectors.pop(key, None)
                return []
            self._selectors[key] = pdb_selector(change.object)
            return [key]
        if change.resource == "pods":
            label_sets = [metadata.get("labels")]
            if change.old is not None:
                label_sets.append((change.old.get("metadata") or {}).get("labels"))
            return [
                key
                for key, selector in sorted(self._selectors.items())
                if key[0] == namespace
                and selector is not None
                and any(selector.matches(labels) for labels in label_sets)
            ]
        if change.resource in SCALE_OWNERS:
            return [key for key in sorted(self._selectors) if key[0] == namespace]
        return []

    def all_keys(self) -> Iterable[Hashable]:
        self._selectors = {
            (pdb["metadata"]["namespace"], pdb["metadata"]["name"]): pdb_selector(pdb)
            for pdb in self.store.list(PDBS)
        }
        return sorted(self._selectors)

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        pdb = self.store.find(PDBS, namespace, name)
        if pdb is None:
            return None
        selector = pdb_selector(pdb)
        pods = (
            []
            if selector is None
            else self.store.list("pods", namespace=namespace, labels=selector)
        )
        if not pods:
            emit_event(
                self.store, pdb, "NoPods", "No matching pods found", component="controllermanager"
            )
        now, old_status = self.clock.now(), pdb.get("status") or {}
        spec = pdb.get("spec") or {}
        try:
            scale, unmanaged = (
                self._controller_scale(pods) if uses_controller_scale(spec) else (0, [])
            )
            expected, desired = expected_and_desired(spec, len(pods), scale)
        except (ScaleLookupError, ValueError) as error:
            emit_event(
                self.store,
                pdb,
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {error}",
                event_type="Warning",
                component="controllermanager",
            )
            self._write_status(pdb, failed_status(old_status, str(error), rfc3339(now)))
            return None
        if unmanaged:
            emit_event(
                self.store,
                pdb,
                "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{spec.get('selector')}) were found to be unmanaged. As a result, the status "
                "of the PDB cannot be calculated correctly, which may result in undefined "
                'behavior. To account for these pods please set ".spec.minAvailable" field of '
                "the PDB to an integer value.",
                event_type="Warning",
                component="controllermanager",
            )
        timeout = self.settings.pdb_deletion_timeout_seconds
        disrupted, recheck = live_disrupted_pods(
            pods, old_status.get("disruptedPods") or {}, now, timeout
        )
        status = pdb_status(
            old_status,
            int(pdb["metadata"].get("generation") or 1),
            count_healthy(pods, disrupted, now, timeout),
            desired,
            expected,
            disrupted,
            rfc3339(now),
        )
        self._write_status(pdb, status)
        if recheck is None:
            return None
        return max(0.0, (recheck - now).total_seconds()) + 1.0

    def _write_status(self, pdb: KubeObject, status: KubeObject) -> None:
        if (pdb.get("status") or {}) == status:
            return
        pdb["status"] = status
        self.store.update(PDBS, pdb, subresource="status")

    def _controller_scale(self, pods: Sequence[KubeObject]) -> tuple[int, list[str]]:
        """getExpectedScale: replicas summed over the distinct controllers of `pods`, and the
        names of pods without a controller (left out, as upstream since 1.27)."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = _controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = self._find_controller(ref, pod["metadata"]["namespace"])
            if found is None:
                raise ScaleLookupError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    def _find_controller(self, ref: Mapping[str, Any], namespace: str) -> tuple[str, int] | None:
        """(uid, replicas) of the pod's controller; a Deployment stands for its ReplicaSets."""
        owner = self._owner(ref, namespace)
        if owner is None:
            return None
        if ref.get("kind") == "ReplicaSet":
            parent_ref = _controller_ref(owner)
            if parent_ref is not None and parent_ref.get("kind") == "Deployment":
                parent = self._owner(parent_ref, namespace)
                if parent is not None:
                    owner = parent
        replicas = (owner.get("spec") or {}).get("replicas")
        return str(owner["metadata"]["uid"]), int(1 if replicas is None else replicas)

    def _owner(self, ref: Mapping[str, Any], namespace: str) -> KubeObject | None:
        group = str(ref.get("apiVersion", "")).partition("/")[0]
        resource = {
            "ReplicaSet": "apps/replicasets",
            "Deployment": "apps/deployments",
            "StatefulSet": "apps/statefulsets",
        }.get(str(ref.get("kind")))
        if resource is None or group not in ("apps", "extensions"):
            return None
        owner = self.store.find(resource, namespace, str(ref.get("name", "")))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner
