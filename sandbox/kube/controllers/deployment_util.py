"""Pure decisions of the Deployment controller, after `pkg/controller/deployment`.

Mirrors `util/deployment_util.go` (fenceposts, hashes, revisions,
proportions, conditions), `sync.go` (`getNewReplicaSet`, `scale`,
`calculateStatus`, `cleanupDeployment`), `rolling.go`, `recreate.go` and
`progress.go`. Inputs are plain API JSON as the store returns it; outputs are
plain data (`ScaleAction`, `SyncPlan`, new status dicts). Nothing here reads a
clock or touches the store: `now` is a parameter, and no input is mutated.

`plan_sync` strings the pieces together in `syncDeployment`'s order:
paused → `sync`; a scaling event → `sync`; Recreate → `rollout_recreate`;
RollingUpdate → `rollout_rolling` ("scale up if we can; if we scaled, stop;
else scale down if we can; else clean up; then sync status").
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sandbox.kube.clock import parse_time, rfc3339
from sandbox.kube.controllers.replicaset_util import new_controller_ref

KubeObject = dict[str, Any]
IntOrPercent = int | str | None

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"  # apps.DefaultDeploymentUniqueLabelKey
MAX_REV_HISTORY_LENGTH_IN_CHARS = 2000
MAX_INT32 = 2**31 - 1
ROLLING_UPDATE, RECREATE = "RollingUpdate", "Recreate"

_ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        DEPRECATED_ROLLBACK_TO_ANNOTATION,
    }
)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery utilrand alphanums
_PERCENT = re.compile(r"^(\d+)%$")


class ConditionType(StrEnum):
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    REPLICA_FAILURE = "ReplicaFailure"


class Reason(StrEnum):
    """Condition reasons, as `deployment_util.go` names them."""

    REPLICA_SET_UPDATED = "ReplicaSetUpdated"
    FAILED_RS_CREATE = "ReplicaSetCreateError"
    NEW_REPLICA_SET = "NewReplicaSetCreated"
    FOUND_NEW_RS = "FoundNewReplicaSet"
    NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
    TIMED_OUT = "ProgressDeadlineExceeded"
    PAUSED = "DeploymentPaused"
    RESUMED = "DeploymentResumed"
    MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
    MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"


# ---- small readers (absent int fields read as 0, as Go zero values) ----


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(_meta(obj).get("annotations") or {})


def spec_replicas(obj: Mapping[str, Any]) -> int:
    """`*spec.replicas`; the API server defaults it to 1."""
    value = _spec(obj).get("replicas", 1)
    return 1 if value is None else int(value)


def status_int(obj: Mapping[str, Any], key: str) -> int:
    return int((obj.get("status") or {}).get(key, 0) or 0)


def _status_field(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key, 0) or 0)


def _creation_key(rs: Mapping[str, Any]) -> tuple[str, str]:
    """`ReplicaSetsByCreationTimestamp`: older first, ties by name (RFC 3339 sorts as time)."""
    return (str(_meta(rs).get("creationTimestamp") or ""), name_of(rs))


# ---- fenceposts ----


def get_scaled_value_from_int_or_percent(value: IntOrPercent, total: int, round_up: bool) -> int:
    """`intstr.GetScaledValueFromIntOrPercent`: ints as they are, percentages of `total`.

    >>> get_scaled_value_from_int_or_percent("25%", 3, round_up=True)
    1
    >>> get_scaled_value_from_int_or_percent("25%", 3, round_up=False)
    0
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value.strip())
    if match is None:
        raise ValueError(
            f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}"
        )
    scaled = int(match.group(1)) * total
    return -(-scaled // 100) if round_up else scaled // 100


def resolve_fenceposts(
    max_surge: IntOrPercent, max_unavailable: IntOrPercent, desired: int
) -> tuple[int, int]:
    """`ResolveFenceposts`: surge rounds up, unavailable rounds down; 0/0 becomes 0/1.

    With the 25 %/25 % defaults: 1 → (1, 0), 3 → (1, 0), 4 → (1, 1), 10 → (3, 2).

    >>> resolve_fenceposts("25%", "25%", 10)
    (3, 2)
    >>> resolve_fenceposts("0%", "10%", 3)
    (0, 1)
    """
    surge = get_scaled_value_from_int_or_percent(max_surge, desired, round_up=True)
    unavailable = get_scaled_value_from_int_or_percent(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # "surge might not work due to quota"
    return surge, unavailable


def is_rolling_update(d: Mapping[str, Any]) -> bool:
    return strategy_type(d) == ROLLING_UPDATE


def strategy_type(d: Mapping[str, Any]) -> str:
    """`spec.strategy.type`; the API server defaults it to RollingUpdate."""
    return str((_spec(d).get("strategy") or {}).get("type") or ROLLING_UPDATE)


def _rolling(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}


def max_unavailable(d: Mapping[str, Any]) -> int:
    """`MaxUnavailable`: 0 unless RollingUpdate with replicas > 0; capped at replicas.

    >>> max_unavailable({"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...     "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 5}}}})
    3
    """
    replicas = spec_replicas(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    rolling = _rolling(d)
    _, unavailable = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas
    )
    return min(unavailable, replicas)


def min_available(d: Mapping[str, Any]) -> int:
    """`MinAvailable`: replicas - MaxUnavailable for RollingUpdate, else 0."""
    if not is_rolling_update(d):
        return 0
    return spec_replicas(d) - max_unavailable(d)


def max_surge(d: Mapping[str, Any]) -> int:
    """`MaxSurge`: 0 unless RollingUpdate.

    >>> max_surge({"spec": {"replicas": 10, "strategy": {"type": "RollingUpdate",
    ...     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}})
    3
    """
    if not is_rolling_update(d):
        return 0
    rolling = _rolling(d)
    surge, _ = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), spec_replicas(d)
    )
    return surge


# ---- pod-template-hash ----


def semantic_form(value: Any) -> Any:
    """What `apiequality.Semantic.DeepEqual` sees in JSON: null, {} and [] as absent.

    kubectl's `rollout undo` sends `creationTimestamp: null` and `resources: {}`;
    in Go these are the zero values of fields that were never set.

    >>> semantic_form({"metadata": {"creationTimestamp": None, "labels": {"a": "b"}},
    ...                "spec": {"resources": {}}})
    {'metadata': {'labels': {'a': 'b'}}}
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            normal = semantic_form(item)
            if normal is None or normal in ({}, []):
                continue
            out[key] = normal
        return out
    if isinstance(value, list):
        return [semantic_form(item) for item in value]
    return value


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's `hash/fnv.New32a`).

    >>> fnv32a(b"")
    2166136261
    """
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode_string(text: str) -> str:
    """`rand.SafeEncodeString`: each character mapped into a vowel-free alphabet.

    Decimal digits land on "4-9bcdf", which is why hashes look like `5d59d67564`.

    >>> safe_encode_string("1234567890")
    '56789bcdf4'
    """
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in text)


def pod_template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """`controller.ComputeHash`: FNV-32a of the template, then the collision count, encoded.

    Upstream hashes the Go struct dump (`DeepHashObject`); here the hashed form
    is the template's canonical JSON (sorted keys, nulls and empties dropped),
    so the value is stable for equal templates but not byte-equal to a real
    cluster's. The rendering is upstream's: the decimal uint32, safe-encoded.
    A collision count appends its little-endian bytes, giving a new name.

    >>> t = {"metadata": {"labels": {"app": "web"}},
    ...      "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}
    >>> pod_template_hash(t) == pod_template_hash({**t, "metadata": {**t["metadata"],
    ...     "creationTimestamp": None}})
    True
    >>> pod_template_hash(t) != pod_template_hash(t, collision_count=1)
    True
    """
    canonical = json.dumps(semantic_form(template), sort_keys=True, separators=(",", ":"))
    data = canonical.encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode_string(str(fnv32a(data)))


def _template_without_hash(template: Mapping[str, Any]) -> Any:
    stripped = copy.deepcopy(dict(template))
    labels = (stripped.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return semantic_form(stripped)


def equal_ignore_hash(template1: Mapping[str, Any], template2: Mapping[str, Any]) -> bool:
    """`EqualIgnoreHash`: semantic equality with the pod-template-hash label removed.

    >>> equal_ignore_hash({"metadata": {"labels": {"app": "w", "pod-template-hash": "x"}}},
    ...                   {"metadata": {"labels": {"app": "w"}, "creationTimestamp": None}})
    True
    """
    return bool(_template_without_hash(template1) == _template_without_hash(template2))


# ---- finding the new and old ReplicaSets ----


def sort_by_creation(rss: Iterable[KubeObject]) -> list[KubeObject]:
    """`ReplicaSetsByCreationTimestamp`: oldest first, ties by name."""
    return sorted(rss, key=_creation_key)


def sort_by_size_older(rss: Iterable[KubeObject]) -> list[KubeObject]:
    """`ReplicaSetsBySizeOlder`: larger first; same size, older first."""
    return sorted(sort_by_creation(rss), key=lambda rs: -spec_replicas(rs))


def sort_by_size_newer(rss: Iterable[KubeObject]) -> list[KubeObject]:
    """`ReplicaSetsBySizeNewer`: larger first; same size, newer first."""
    newest_first = sorted(rss, key=_creation_key, reverse=True)
    return sorted(newest_first, key=lambda rs: -spec_replicas(rs))


def revision(obj: Mapping[str, Any]) -> int | None:
    """`Revision`: the revision annotation; absent is 0, unparsable is None.

    >>> revision({"metadata": {"annotations": {REVISION_ANNOTATION: "3"}}}), revision({})
    (3, 0)
    """
    value = annotations_of(obj).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    try:
        return int(value, 10)
    except ValueError:
        return None


def sort_by_revision(rss: Iterable[KubeObject]) -> list[KubeObject]:
    """`ReplicaSetsByRevision`: lower revision first; unparsable or equal by creation."""

    def compare(a: KubeObject, b: KubeObject) -> int:
        rev_a, rev_b = revision(a), revision(b)
        if rev_a is None or rev_b is None or rev_a == rev_b:
            key_a, key_b = _creation_key(a), _creation_key(b)
            return -1 if key_a < key_b else 1 if key_a > key_b else 0
        return -1 if rev_a < rev_b else 1

    return sorted(rss, key=functools.cmp_to_key(compare))


def find_new_replicaset(d: Mapping[str, Any], rs_list: Iterable[KubeObject]) -> KubeObject | None:
    """`FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.

    >>> d = {"spec": {"template": {"metadata": {"labels": {"app": "w"}}}}}
    >>> rs = {"metadata": {"name": "w-1"}, "spec": {"template": {"metadata": {"labels":
    ...       {"app": "w", "pod-template-hash": "1"}}}}}
    >>> name_of(find_new_replicaset(d, [rs]) or {})
    'w-1'
    """
    template = _spec(d).get("template") or {}
    for rs in sort_by_creation(rs_list):
        if equal_ignore_hash(_spec(rs).get("template") or {}, template):
            return rs
    return None


def find_old_replicasets(
    d: Mapping[str, Any], rs_list: Iterable[KubeObject]
) -> tuple[list[KubeObject], list[KubeObject]]:
    """`FindOldReplicaSets`: (old ones with replicas > 0, all old ones)."""
    rs_list = list(rs_list)
    new_rs = find_new_replicaset(d, rs_list)
    required: list[KubeObject] = []
    every: list[KubeObject] = []
    for rs in rs_list:
        if new_rs is not None and name_of(rs) == name_of(new_rs):
            continue
        every.append(rs)
        if spec_replicas(rs) != 0:
            required.append(rs)
    return required, every


def filter_active_replicasets(rss: Iterable[KubeObject | None]) -> list[KubeObject]:
    """`FilterActiveReplicaSets`: those with spec.replicas > 0."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def find_active_or_latest(
    new_rs: KubeObject | None, old_rss: Sequence[KubeObject]
) -> KubeObject | None:
    """`FindActiveOrLatest`: the only active RS, the newest if none is active, None if several."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=_creation_key, reverse=True)
    active = filter_active_replicasets([*newest_first, new_rs])
    if len(active) == 0:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


# ---- counting ----


def get_replica_count_for_replicasets(rss: Iterable[KubeObject | None]) -> int:
    """Σ spec.replicas."""
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def get_actual_replica_count_for_replicasets(rss: Iterable[KubeObject | None]) -> int:
    """Σ status.replicas."""
    return sum(status_int(rs, "replicas") for rs in rss if rs is not None)


def get_ready_replica_count_for_replicasets(rss: Iterable[KubeObject | None]) -> int:
    return sum(status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def get_available_replica_count_for_replicasets(rss: Iterable[KubeObject | None]) -> int:
    return sum(status_int(rs, "availableReplicas") for rs in rss if rs is not None)


# ---- revisions and annotations ----


def max_revision(rss: Iterable[KubeObject]) -> int:
    """`MaxRevision`: the highest revision; unparsable ones are skipped."""
    return max((value for rs in rss if (value := revision(rs)) is not None), default=0)


def last_revision(rss: Iterable[KubeObject]) -> int:
    """`LastRevision`: the second highest revision, which `rollout undo` goes back to."""
    highest = second = 0
    for rs in rss:
        value = revision(rs)
        if value is None:
            continue
        if value >= highest:
            highest, second = value, highest
        elif value > second:
            second = value
    return second


def replicas_annotations(d: Mapping[str, Any]) -> dict[str, str]:
    """desired-replicas = spec.replicas; max-replicas = spec.replicas + MaxSurge."""
    replicas = spec_replicas(d)
    return {
        DESIRED_REPLICAS_ANNOTATION: str(replicas),
        MAX_REPLICAS_ANNOTATION: str(replicas + max_surge(d)),
    }


def replicas_annotations_need_update(rs: Mapping[str, Any], d: Mapping[str, Any]) -> bool:
    current = annotations_of(rs)
    return any(current.get(key) != value for key, value in replicas_annotations(d).items())


def get_desired_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)


def get_max_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return _int_annotation(rs, MAX_REPLICAS_ANNOTATION)


def _int_annotation(rs: Mapping[str, Any], key: str) -> int | None:
    value = annotations_of(rs).get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def set_new_replicaset_annotations(
    d: Mapping[str, Any], rs: Mapping[str, Any], new_revision: str, exists: bool
) -> dict[str, str] | None:
    """`SetNewReplicaSetAnnotations`: the RS's new annotations, or None if unchanged.

    Copies the Deployment's annotations (but not the skipped ones), raises the
    revision to `new_revision` if lower (a restored RS gets max+1, keeping the
    old numbers in `revision-history`), and on creation adds desired/max replicas.

    >>> d = {"metadata": {"annotations": {"team": "a"}}, "spec": {"replicas": 3}}
    >>> rs = {"metadata": {"annotations": {REVISION_ANNOTATION: "1"}}}
    >>> set_new_replicaset_annotations(d, rs, "3", exists=True)
    {'deployment.kubernetes.io/revision': '3', 'team': 'a', \
'deployment.kubernetes.io/revision-history': '1'}
    """
    annotations = annotations_of(rs)
    changed = False
    for key, value in annotations_of(d).items():
        if key in _ANNOTATIONS_TO_SKIP or annotations.get(key) == value:
            continue
        annotations[key] = value
        changed = True
    old_revision = annotations.get(REVISION_ANNOTATION)
    try:
        old_number = int(old_revision, 10) if old_revision else 0
        new_number = int(new_revision, 10)
    except ValueError:
        return None
    if old_number < new_number:
        annotations[REVISION_ANNOTATION] = new_revision
        changed = True
        if old_revision is not None:
            history = annotations.get(REVISION_HISTORY_ANNOTATION, "")
            kept = _revision_history(history, old_revision)
            if kept is not None:
                annotations[REVISION_HISTORY_ANNOTATION] = kept
    if not exists:
        for key, value in replicas_annotations(d).items():
            if annotations.get(key) != value:
                annotations[key] = value
                changed = True
    return annotations if changed else None


def _revision_history(history: str, old_revision: str) -> str | None:
    if not history:
        return old_revision
    revisions = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > MAX_REV_HISTORY_LENGTH_IN_CHARS and start < len(revisions):
        total -= len(revisions[start]) + 1
        start += 1
    if total > MAX_REV_HISTORY_LENGTH_IN_CHARS:
        return None
    return ",".join([*revisions[start:], old_revision])


def scaled_replicaset(rs: Mapping[str, Any], replicas: int, d: Mapping[str, Any]) -> KubeObject:
    """What `scaleReplicaSet` writes: the new size plus desired/max-replicas annotations."""
    scaled = copy.deepcopy(dict(rs))
    scaled.setdefault("spec", {})["replicas"] = replicas
    scaled.setdefault("metadata", {}).setdefault("annotations", {}).update(replicas_annotations(d))
    return scaled


# ---- conditions ----


def new_deployment_condition(
    condition_type: ConditionType, status: str, reason: Reason, message: str, now: datetime
) -> KubeObject:
    stamp = rfc3339(now)
    return {
        "type": condition_type.value,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason.value,
        "message": message,
    }


def get_deployment_condition(
    status: Mapping[str, Any], condition_type: ConditionType
) -> KubeObject | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == condition_type.value:
            return dict(condition)
    return None


def set_deployment_condition(status: Mapping[str, Any], condition: Mapping[str, Any]) -> KubeObject:
    """`SetDeploymentCondition`: replace only when status or reason changes.

    The lastTransitionTime is kept while the status stays the same.

    >>> old = {"conditions": [{"type": "Available", "status": "True", "reason": "A",
    ...     "lastUpdateTime": "t0", "lastTransitionTime": "t0", "message": ""}]}
    >>> new = {"type": "Available", "status": "True", "reason": "B",
    ...     "lastUpdateTime": "t1", "lastTransitionTime": "t1", "message": ""}
    >>> set_deployment_condition(old, new)["conditions"][0]["lastTransitionTime"]
    't0'
    """
    result = copy.deepcopy(dict(status))
    condition_type = condition["type"]
    current = next(
        (dict(c) for c in result.get("conditions") or [] if c.get("type") == condition_type), None
    )
    if (
        current is not None
        and current.get("status") == condition.get("status")
        and current.get("reason") == condition.get("reason")
    ):
        return result
    condition = dict(condition)
    if current is not None and current.get("status") == condition.get("status"):
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    others = [c for c in result.get("conditions") or [] if c.get("type") != condition_type]
    result["conditions"] = [*others, condition]
    return result


def remove_deployment_condition(
    status: Mapping[str, Any], condition_type: ConditionType
) -> KubeObject:
    result = copy.deepcopy(dict(status))
    kept = [c for c in result.get("conditions") or [] if c.get("type") != condition_type.value]
    if kept:
        result["conditions"] = kept
    else:
        result.pop("conditions", None)
    return result


def replicaset_to_deployment_condition(condition: Mapping[str, Any]) -> KubeObject:
    """`ReplicaSetToDeploymentCondition`: a ReplicaFailure lifted to the Deployment."""
    return {
        "type": condition.get("type"),
        "status": condition.get("status"),
        "lastUpdateTime": condition.get("lastTransitionTime"),
        "lastTransitionTime": condition.get("lastTransitionTime"),
        "reason": condition.get("reason"),
        "message": condition.get("message"),
    }


# ---- status ----


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    deadline = _spec(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def has_revision_history_limit(d: Mapping[str, Any]) -> bool:
    limit = _spec(d).get("revisionHistoryLimit")
    return limit is not None and int(limit) != MAX_INT32


def calculate_status(
    all_rss: Sequence[KubeObject | None],
    new_rs: KubeObject | None,
    d: Mapping[str, Any],
    now: datetime,
) -> KubeObject:
    """`calculateStatus`: counts from the ReplicaSets, the Available condition.

    Every counter is `int32 omitempty`: a zero is absent, so the Python client
    reads None, not 0. `unavailableReplicas` is Σ spec - Σ available, at least 0.

    >>> d = {"metadata": {"generation": 2}, "spec": {"replicas": 1, "strategy": {
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}, "status": {}}
    >>> rs = {"spec": {"replicas": 1}, "status": {"replicas": 1}}
    >>> s = calculate_status([rs], rs, d, parse_time("2026-01-01T00:00:00Z"))
    >>> {k: v for k, v in s.items() if k != "conditions"}
    {'observedGeneration': 2, 'replicas': 1, 'updatedReplicas': 1, 'unavailableReplicas': 1}
    >>> s["conditions"][0]["reason"]
    'MinimumReplicasUnavailable'
    """
    available = get_available_replica_count_for_replicasets(all_rss)
    total = get_replica_count_for_replicasets(all_rss)
    counters = {
        "observedGeneration": int(_meta(d).get("generation", 0) or 0),
        "replicas": get_actual_replica_count_for_replicasets(all_rss),
        "updatedReplicas": get_actual_replica_count_for_replicasets([new_rs]),
        "readyReplicas": get_ready_replica_count_for_replicasets(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    status: KubeObject = {key: value for key, value in counters.items() if value}
    current = d.get("status") or {}
    if current.get("conditions"):
        status["conditions"] = copy.deepcopy(current["conditions"])
    if current.get("collisionCount") is not None:
        status["collisionCount"] = current["collisionCount"]
    if available >= spec_replicas(d) - max_unavailable(d):
        condition = new_deployment_condition(
            ConditionType.AVAILABLE,
            "True",
            Reason.MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    else:
        condition = new_deployment_condition(
            ConditionType.AVAILABLE,
            "False",
            Reason.MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    return set_deployment_condition(status, condition)


def deployment_complete(d: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """`DeploymentComplete`: all updated, no old pods, all available, generation observed.

    >>> d = {"metadata": {"generation": 1}, "spec": {"replicas": 2}}
    >>> deployment_complete(d, {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2,
    ...                         "observedGeneration": 1})
    True
    """
    replicas = spec_replicas(d)
    return (
        _status_field(new_status, "updatedReplicas") == replicas
        and _status_field(new_status, "replicas") == replicas
        and _status_field(new_status, "availableReplicas") == replicas
        and _status_field(new_status, "observedGeneration")
        >= int(_meta(d).get("generation", 0) or 0)
    )


def deployment_progressing(d: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """`DeploymentProgressing`: more updated, fewer old, more ready or more available.

    >>> d = {"status": {"replicas": 3, "updatedReplicas": 1}}
    >>> deployment_progressing(d, {"replicas": 3, "updatedReplicas": 2})
    True
    >>> deployment_progressing(d, {"replicas": 3, "updatedReplicas": 1})
    False
    """
    old = d.get("status") or {}
    old_old = _status_field(old, "replicas") - _status_field(old, "updatedReplicas")
    new_old = _status_field(new_status, "replicas") - _status_field(new_status, "updatedReplicas")
    return (
        _status_field(new_status, "updatedReplicas") > _status_field(old, "updatedReplicas")
        or new_old < old_old
        or _status_field(new_status, "readyReplicas") > _status_field(old, "readyReplicas")
        or _status_field(new_status, "availableReplicas") > _status_field(old, "availableReplicas")
    )


def deployment_timed_out(
    d: Mapping[str, Any], new_status: Mapping[str, Any], now: datetime
) -> bool:
    """`DeploymentTimedOut`: no progress for longer than progressDeadlineSeconds.

    Never after NewReplicaSetAvailable; always once ProgressDeadlineExceeded.

    >>> d = {"spec": {"progressDeadlineSeconds": 600}}
    >>> status = {"conditions": [{"type": "Progressing", "status": "True",
    ...     "reason": "ReplicaSetUpdated", "lastUpdateTime": "2026-01-01T00:00:00Z"}]}
    >>> deployment_timed_out(d, status, parse_time("2026-01-01T00:10:00Z"))
    False
    >>> deployment_timed_out(d, status, parse_time("2026-01-01T00:10:01Z"))
    True
    """
    if not has_progress_deadline(d):
        return False
    condition = get_deployment_condition(new_status, ConditionType.PROGRESSING)
    if condition is None:
        return False
    if condition.get("reason") == Reason.NEW_RS_AVAILABLE.value:
        return False
    if condition.get("reason") == Reason.TIMED_OUT.value:
        return True
    last = condition.get("lastUpdateTime")
    if not last:
        return False
    deadline = parse_time(last) + timedelta(seconds=int(_spec(d)["progressDeadlineSeconds"]))
    return deadline < now


def get_replica_failures(
    all_rss: Sequence[KubeObject | None], new_rs: KubeObject | None
) -> list[KubeObject]:
    """`getReplicaFailures`: the new RS's ReplicaFailure conditions first, else any RS's."""

    def failures(rs: KubeObject | None) -> list[KubeObject]:
        if rs is None:
            return []
        return [
            replicaset_to_deployment_condition(c)
            for c in (rs.get("status") or {}).get("conditions") or []
            if c.get("type") == ConditionType.REPLICA_FAILURE.value
        ]

    found = failures(new_rs)
    if found:
        return found
    return [condition for rs in all_rss for condition in failures(rs)]


def sync_rollout_status(
    all_rss: Sequence[KubeObject | None],
    new_rs: KubeObject | None,
    d: Mapping[str, Any],
    now: datetime,
) -> KubeObject:
    """`syncRolloutStatus`: calculateStatus plus the Progressing condition.

    Complete → NewReplicaSetAvailable; progress → ReplicaSetUpdated with a
    fresh lastUpdateTime (lastTransitionTime kept while True); no progress past
    the deadline → False/ProgressDeadlineExceeded. Nothing is estimated once
    complete and still complete.
    """
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        status = remove_deployment_condition(status, ConditionType.PROGRESSING)
    current = get_deployment_condition(d.get("status") or {}, ConditionType.PROGRESSING)
    is_complete = (
        _status_field(status, "replicas") == _status_field(status, "updatedReplicas")
        and current is not None
        and current.get("reason") == Reason.NEW_RS_AVAILABLE.value
    )
    if has_progress_deadline(d) and not is_complete:
        rs_name = name_of(new_rs) if new_rs is not None else None
        subject = f'ReplicaSet "{rs_name}"' if rs_name else f'Deployment "{name_of(d)}"'
        if deployment_complete(d, status):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.NEW_RS_AVAILABLE,
                f"{subject} has successfully progressed.",
                now,
            )
            status = set_deployment_condition(status, condition)
        elif deployment_progressing(d, status):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.REPLICA_SET_UPDATED,
                f"{subject} is progressing.",
                now,
            )
            if current is not None:
                if current.get("status") == "True":
                    condition["lastTransitionTime"] = current.get("lastTransitionTime")
                status = remove_deployment_condition(status, ConditionType.PROGRESSING)
            status = set_deployment_condition(status, condition)
        elif deployment_timed_out(d, status, now):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "False",
                Reason.TIMED_OUT,
                f"{subject} has timed out progressing.",
                now,
            )
            status = set_deployment_condition(status, condition)
    failures = get_replica_failures(all_rss, new_rs)
    if failures:
        return set_deployment_condition(status, failures[0])
    return remove_deployment_condition(status, ConditionType.REPLICA_FAILURE)


def requeue_stuck_deployment(
    d: Mapping[str, Any], new_status: Mapping[str, Any], now: datetime
) -> float | None:
    """`requeueStuckDeployment`: seconds until the progress deadline would pass, or None.

    Progress last reported at 00:00:00, now 00:03:00, deadline 600 s → look
    again after 7 min plus one second (upstream's guard against skew). Read
    from the status about to be written. Two differences from upstream: an
    overdue check waits one second (upstream: rate-limited "now"), and a
    Paused or NewReplicaSetAvailable condition, which can never time out,
    asks for no check (upstream would requeue such a Deployment repeatedly).

    >>> d = {"metadata": {"generation": 1}, "spec": {"replicas": 1,
    ...      "progressDeadlineSeconds": 600}}
    >>> status = {"conditions": [{"type": "Progressing", "status": "True",
    ...     "reason": "ReplicaSetUpdated", "lastUpdateTime": "2026-01-01T00:00:00Z"}]}
    >>> requeue_stuck_deployment(d, status, parse_time("2026-01-01T00:03:00Z"))
    421.0
    """
    condition = get_deployment_condition(new_status, ConditionType.PROGRESSING)
    if not has_progress_deadline(d) or condition is None:
        return None
    if deployment_complete(d, new_status) or condition.get("reason") == Reason.TIMED_OUT.value:
        return None
    if condition.get("reason") in (Reason.PAUSED.value, Reason.NEW_RS_AVAILABLE.value):
        return None
    last = condition.get("lastUpdateTime")
    if not last:
        return None
    deadline = parse_time(last) + timedelta(seconds=int(_spec(d)["progressDeadlineSeconds"]))
    after = (deadline - now).total_seconds()
    return max(after, 0.0) + 1.0


def check_paused_conditions(d: Mapping[str, Any], now: datetime) -> KubeObject | None:
    """`checkPausedConditions`: the status with DeploymentPaused/Resumed, or None if unchanged.

    A ProgressDeadlineExceeded condition is never overwritten.
    """
    if not has_progress_deadline(d):
        return None
    status = d.get("status") or {}
    current = get_deployment_condition(status, ConditionType.PROGRESSING)
    if current is not None and current.get("reason") == Reason.TIMED_OUT.value:
        return None
    paused_exists = current is not None and current.get("reason") == Reason.PAUSED.value
    paused = bool(_spec(d).get("paused"))
    if paused and not paused_exists:
        condition = new_deployment_condition(
            ConditionType.PROGRESSING, "Unknown", Reason.PAUSED, "Deployment is paused", now
        )
    elif not paused and paused_exists:
        condition = new_deployment_condition(
            ConditionType.PROGRESSING, "Unknown", Reason.RESUMED, "Deployment is resumed", now
        )
    else:
        return None
    return set_deployment_condition(status, condition)


# ---- scaling decisions ----


@dataclass(frozen=True)
class ScaleAction:
    """Set `spec.replicas` of one ReplicaSet (and its desired/max-replicas annotations).

    `replicas == previous` only syncs the annotations (proportional scaling
    touches every active ReplicaSet); no event is recorded for it.
    """

    rs_name: str
    replicas: int
    previous: int

    @property
    def operation(self) -> str:
        return "up" if self.replicas > self.previous else "down"

    @property
    def event_message(self) -> str:
        return (
            f"Scaled {self.operation} replica set {self.rs_name} "
            f"from {self.previous} to {self.replicas}"
        )


def new_rs_new_replicas(
    d: Mapping[str, Any], all_rss: Sequence[KubeObject | None], new_rs: Mapping[str, Any]
) -> int:
    """`NewRSNewReplicas`: how big the new RS may be now.

    RollingUpdate: total (Σ spec of all RSs) stays ≤ replicas + maxSurge and the
    new RS ≤ replicas. Recreate: replicas.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old, new = {"spec": {"replicas": 3}}, {"spec": {"replicas": 0}}
    >>> new_rs_new_replicas(d, [old, new], new)
    1
    """
    strategy = strategy_type(d)
    replicas = spec_replicas(d)
    if strategy == RECREATE:
        return replicas
    if strategy != ROLLING_UPDATE:
        raise ValueError(f"deployment type {strategy} isn't supported")
    surge = get_scaled_value_from_int_or_percent(_rolling(d).get("maxSurge"), replicas, True)
    current = get_replica_count_for_replicasets(all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def is_saturated(d: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    """`IsSaturated`: the RS has, wants and has available all of the Deployment's replicas."""
    if rs is None:
        return False
    desired = get_desired_replicas_annotation(rs)
    replicas = spec_replicas(d)
    return (
        desired is not None
        and spec_replicas(rs) == replicas
        and desired == replicas
        and status_int(rs, "availableReplicas") == replicas
    )


def _round_to_int32(value: float) -> int:
    """`integer.RoundToInt32`: halves away from zero."""
    return int(value - 0.5) if value < 0 else int(value + 0.5)


def get_replicaset_fraction(rs: Mapping[str, Any], d: Mapping[str, Any]) -> int:
    """`getReplicaSetFraction`: this RS's share of a resize, from its max-replicas annotation.

    An RS of 8 annotated for 13 (10 + surge 3), resized to 20 + 3: round(8·23/13) - 8 = 6.

    >>> d = {"spec": {"replicas": 20, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}}}
    >>> rs = {"metadata": {"annotations": {MAX_REPLICAS_ANNOTATION: "13"}}, "spec": {"replicas": 8}}
    >>> get_replicaset_fraction(rs, d)
    6
    """
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    deployment_replicas = spec_replicas(d) + max_surge(d)
    annotated = get_max_replicas_annotation(rs)
    if annotated is None:
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        return 0  # upstream divides by zero here; nothing sensible to add
    new_size = spec_replicas(rs) * deployment_replicas / annotated
    return _round_to_int32(new_size) - spec_replicas(rs)


def get_proportion(
    rs: Mapping[str, Any] | None, d: Mapping[str, Any], to_add: int, added: int
) -> int:
    """`GetProportion`: the RS's fraction, never beyond what is left to add (or remove).

    >>> d = {"spec": {"replicas": 20, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}}}
    >>> rs = {"metadata": {"annotations": {MAX_REPLICAS_ANNOTATION: "13"}}, "spec": {"replicas": 5}}
    >>> get_proportion(rs, d, 10, 6)
    4
    """
    if rs is None or spec_replicas(rs) == 0 or to_add in (0, added):
        return 0
    fraction = get_replicaset_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def scale(
    d: Mapping[str, Any], new_rs: KubeObject | None, old_rss: Sequence[KubeObject]
) -> list[ScaleAction]:
    """`scale` (sync.go): resize on a scaling event or while paused.

    One active RS takes the whole `spec.replicas`; a saturated new RS makes the
    old ones go to 0; otherwise (RollingUpdate) every active RS gets its
    proportion of replicas + maxSurge, largest first, the leftover to the first.
    """
    active_or_latest = find_active_or_latest(new_rs, old_rss)
    replicas = spec_replicas(d)
    if active_or_latest is not None:
        if spec_replicas(active_or_latest) == replicas:
            if replicas_annotations_need_update(active_or_latest, d):
                return [ScaleAction(name_of(active_or_latest), replicas, replicas)]
            return []
        return [ScaleAction(name_of(active_or_latest), replicas, spec_replicas(active_or_latest))]
    if is_saturated(d, new_rs):
        return [
            ScaleAction(name_of(old), 0, spec_replicas(old))
            for old in filter_active_replicasets(old_rss)
        ]
    if not is_rolling_update(d):
        return []
    active = filter_active_replicasets([*old_rss, new_rs])
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - get_replica_count_for_replicasets(active)
    if to_add > 0:
        active = sort_by_size_newer(active)
    elif to_add < 0:
        active = sort_by_size_older(active)
    added = 0
    sizes: dict[str, int] = {}
    for rs in active:
        if to_add != 0:
            proportion = get_proportion(rs, d, to_add, added)
            sizes[name_of(rs)] = spec_replicas(rs) + proportion
            added += proportion
        else:
            sizes[name_of(rs)] = spec_replicas(rs)
    actions = []
    for index, rs in enumerate(active):
        if index == 0 and to_add != 0:
            sizes[name_of(rs)] = max(0, sizes[name_of(rs)] + to_add - added)
        actions.append(ScaleAction(name_of(rs), sizes[name_of(rs)], spec_replicas(rs)))
    return actions


def is_scaling_event(d: Mapping[str, Any], all_rss: Sequence[KubeObject | None]) -> bool:
    """`isScalingEvent`: an active RS was annotated for a different `spec.replicas`."""
    for rs in filter_active_replicasets(all_rss):
        desired = get_desired_replicas_annotation(rs)
        if desired is not None and desired != spec_replicas(d):
            return True
    return False


# ---- rolling.go ----


def _apply(rss: Sequence[KubeObject], actions: Iterable[ScaleAction]) -> list[KubeObject]:
    sizes = {action.rs_name: action.replicas for action in actions}
    out = []
    for rs in rss:
        resized = rs
        if name_of(rs) in sizes:
            resized = copy.deepcopy(rs)
            resized.setdefault("spec", {})["replicas"] = sizes[name_of(rs)]
        out.append(resized)
    return out


def reconcile_new_replicaset(
    all_rss: Sequence[KubeObject], new_rs: KubeObject, d: Mapping[str, Any]
) -> ScaleAction | None:
    """`reconcileNewReplicaSet`: scale the new RS down to, or up towards, `spec.replicas`.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 2}}
    >>> new = {"metadata": {"name": "new"}, "spec": {"replicas": 1}}
    >>> reconcile_new_replicaset([old, new], new, d)
    ScaleAction(rs_name='new', replicas=2, previous=1)
    """
    current, wanted = spec_replicas(new_rs), spec_replicas(d)
    if current == wanted:
        return None
    if current > wanted:
        return ScaleAction(name_of(new_rs), wanted, current)
    target = new_rs_new_replicas(d, all_rss, new_rs)
    return ScaleAction(name_of(new_rs), target, current) if target != current else None


def cleanup_unhealthy_replicas(
    old_rss: Sequence[KubeObject], d: Mapping[str, Any], max_cleanup_count: int
) -> list[ScaleAction] | None:
    """`cleanupUnhealthyReplicas`: drop old RSs' unavailable replicas, oldest RS first.

    None when an RS reports more available than it wants (a stale status):
    upstream errors out of the whole scale-down pass then, and so do we.

    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 3},
    ...        "status": {"availableReplicas": 1}}
    >>> cleanup_unhealthy_replicas([old], {}, 1)
    [ScaleAction(rs_name='old', replicas=2, previous=3)]
    """
    actions = []
    total = 0
    for rs in sort_by_creation(old_rss):
        if total >= max_cleanup_count:
            break
        replicas, available = spec_replicas(rs), status_int(rs, "availableReplicas")
        if replicas in (0, available):
            continue
        if available > replicas:
            return None
        count = min(max_cleanup_count - total, replicas - available)
        actions.append(ScaleAction(name_of(rs), replicas - count, replicas))
        total += count
    return actions


def scale_down_old_replicasets_for_rolling_update(
    all_rss: Sequence[KubeObject], old_rss: Sequence[KubeObject], d: Mapping[str, Any]
) -> list[ScaleAction]:
    """`scaleDownOldReplicaSetsForRollingUpdate`: keep Σ available ≥ minAvailable.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 3},
    ...        "status": {"availableReplicas": 3}}
    >>> new = {"metadata": {"name": "new"}, "spec": {"replicas": 1}, "status": {}}
    >>> scale_down_old_replicasets_for_rolling_update([old, new], [old], d)
    [ScaleAction(rs_name='old', replicas=2, previous=3)]
    """
    minimum = spec_replicas(d) - max_unavailable(d)
    available = get_available_replica_count_for_replicasets(all_rss)
    if available <= minimum:
        return []
    wanted = available - minimum
    actions = []
    total = 0
    for rs in sort_by_creation(old_rss):
        if total >= wanted:
            break
        replicas = spec_replicas(rs)
        if replicas == 0:
            continue
        count = min(replicas, wanted - total)
        actions.append(ScaleAction(name_of(rs), replicas - count, replicas))
        total += count
    return actions


def reconcile_old_replicasets(
    all_rss: Sequence[KubeObject],
    old_rss: Sequence[KubeObject],
    new_rs: KubeObject,
    d: Mapping[str, Any],
) -> list[ScaleAction]:
    """`reconcileOldReplicaSets`: unhealthy old replicas first, then by minAvailable.

    maxScaledDown = Σ spec - minAvailable - (new spec - new available); nothing
    happens unless it is positive, so unavailable new pods never let old ones go.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 2},
    ...        "status": {"availableReplicas": 2}}
    >>> new = {"metadata": {"name": "new"}, "spec": {"replicas": 2}, "status": {}}
    >>> reconcile_old_replicasets([old, new], [old], new, d)
    []
    """
    if get_replica_count_for_replicasets(old_rss) == 0:
        return []
    all_pods = get_replica_count_for_replicasets(all_rss)
    minimum = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas")
    max_scaled_down = all_pods - minimum - new_unavailable
    if max_scaled_down <= 0:
        return []
    cleanup = cleanup_unhealthy_replicas(old_rss, d, max_scaled_down)
    if cleanup is None:
        return []
    cleaned = _apply(old_rss, cleanup)
    scale_down = scale_down_old_replicasets_for_rolling_update([*cleaned, new_rs], cleaned, d)
    return [*cleanup, *scale_down]


def cleanup_deployment(old_rss: Sequence[KubeObject], d: Mapping[str, Any]) -> list[str]:
    """`cleanupDeployment`: names of old RSs beyond revisionHistoryLimit, lowest revision first.

    Only RSs with nothing left (spec and status 0, generation observed, not deleting) go.

    >>> old = [{"metadata": {"name": f"rs{i}", "generation": 1,
    ...          "annotations": {REVISION_ANNOTATION: str(i)}},
    ...         "spec": {"replicas": 0}, "status": {"replicas": 0, "observedGeneration": 1}}
    ...        for i in (1, 2, 3)]
    >>> cleanup_deployment(old, {"spec": {"revisionHistoryLimit": 1}})
    ['rs1', 'rs2']
    """
    if not has_revision_history_limit(d):
        return []
    alive = [rs for rs in old_rss if _meta(rs).get("deletionTimestamp") is None]
    diff = len(alive) - int(_spec(d)["revisionHistoryLimit"])
    if diff <= 0:
        return []
    doomed = []
    for rs in sort_by_revision(alive)[:diff]:
        generation = int(_meta(rs).get("generation", 0) or 0)
        if (
            status_int(rs, "replicas") != 0
            or spec_replicas(rs) != 0
            or generation > status_int(rs, "observedGeneration")
        ):
            continue
        doomed.append(name_of(rs))
    return doomed


# ---- recreate.go ----


def scale_down_old_replicasets_for_recreate(old_rss: Sequence[KubeObject]) -> list[ScaleAction]:
    """`scaleDownOldReplicaSetsForRecreate`: every old RS to 0 at once."""
    return [
        ScaleAction(name_of(rs), 0, spec_replicas(rs)) for rs in old_rss if spec_replicas(rs) != 0
    ]


def old_pods_running(
    new_rs: KubeObject | None,
    old_rss: Sequence[KubeObject],
    pod_map: Mapping[str, Sequence[Mapping[str, Any]]],
) -> bool:
    """`oldPodsRunning`: an old RS reports pods, or a pod of one is not Succeeded/Failed.

    Terminating pods count: Recreate waits until the old processes are gone.

    >>> old = {"metadata": {"uid": "o"}, "status": {"replicas": 0}}
    >>> terminating = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:30Z"},
    ...                "status": {"phase": "Running"}}
    >>> old_pods_running(None, [old], {"o": [terminating]})
    True
    """
    if get_actual_replica_count_for_replicasets(old_rss) > 0:
        return True
    new_uid = _meta(new_rs).get("uid") if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if new_uid is not None and rs_uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


# ---- one sync of one Deployment ----


@dataclass(frozen=True)
class ReplicaSetUpdate:
    """Sync the new RS's annotations (revision bump) and minReadySeconds."""

    rs_name: str
    annotations: Mapping[str, str]
    min_ready_seconds: int


@dataclass(frozen=True)
class PlannedEvent:
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class SyncPlan:
    """Everything one `syncDeployment` writes, in the order to write it.

    1. `replicaset_updates`; 2. `create_replicaset`; 3. `deployment_annotations`
    (the revision); 4. `scales`; 5. `deletions`; 6. `status`. `events` go with
    the writes they describe; `requeue_after` is the progress-deadline check.
    """

    create_replicaset: KubeObject | None = None
    replicaset_updates: tuple[ReplicaSetUpdate, ...] = ()
    scales: tuple[ScaleAction, ...] = ()
    deletions: tuple[str, ...] = ()
    deployment_annotations: Mapping[str, str] | None = None
    status: KubeObject | None = None
    events: tuple[PlannedEvent, ...] = ()
    requeue_after: float | None = None

    @property
    def writes_nothing(self) -> bool:
        return not (
            self.create_replicaset
            or self.replicaset_updates
            or self.scales
            or self.deletions
            or self.deployment_annotations is not None
            or self.status is not None
        )


def new_replicaset(
    d: Mapping[str, Any], replicas: int, annotations: Mapping[str, str]
) -> KubeObject:
    """The RS `getNewReplicaSet` creates: `<deploy>-<hash>`, hash in labels and selector."""
    template = copy.deepcopy(dict(_spec(d).get("template") or {}))
    template_hash = pod_template_hash(template, (d.get("status") or {}).get("collisionCount"))
    template_meta = template.setdefault("metadata", {})
    labels = {**(template_meta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: template_hash}
    template_meta["labels"] = labels
    selector = copy.deepcopy(dict(_spec(d).get("selector") or {}))
    selector["matchLabels"] = {
        **(selector.get("matchLabels") or {}),
        POD_TEMPLATE_HASH_LABEL: template_hash,
    }
    spec: KubeObject = {"replicas": replicas}
    min_ready = int(_spec(d).get("minReadySeconds", 0) or 0)
    if min_ready:
        spec["minReadySeconds"] = min_ready
    spec.update(selector=selector, template=template)
    metadata: KubeObject = {
        "name": f"{name_of(d)}-{template_hash}",
        "namespace": _meta(d).get("namespace", "default"),
        "labels": dict(labels),
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    metadata["ownerReferences"] = [new_controller_ref(d)]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata, "spec": spec}


@dataclass
class _Sync:
    """One sync on private copies: each step sees what the previous steps would write."""

    d: KubeObject
    rss: dict[str, KubeObject]
    now: datetime
    create: KubeObject | None = None
    updates: list[ReplicaSetUpdate] = field(default_factory=list)
    scales: list[ScaleAction] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    requeue: float | None = None

    @property
    def status(self) -> KubeObject:
        return dict(self.d.get("status") or {})

    def set_status(self, status: KubeObject) -> None:
        self.d["status"] = status

    def _by_name(self, rss: Iterable[KubeObject | None]) -> list[KubeObject]:
        return [self.rss[name_of(rs)] for rs in rss if rs is not None]

    def all_and_new(self, create: bool) -> tuple[KubeObject | None, list[KubeObject]]:
        """`getAllReplicaSetsAndSyncRevision`."""
        rs_list = list(self.rss.values())
        _, old_rss = find_old_replicasets(self.d, rs_list)
        new_rs = self.get_new_replicaset(rs_list, old_rss, create)
        return new_rs, old_rss

    def get_new_replicaset(
        self, rs_list: list[KubeObject], old_rss: list[KubeObject], create: bool
    ) -> KubeObject | None:
        existing = find_new_replicaset(self.d, rs_list)
        new_revision = str(max_revision(old_rss) + 1)
        if existing is not None:
            return self._sync_existing(existing, new_revision)
        if not create:
            return None
        draft = new_replicaset(self.d, 0, {})
        replicas = new_rs_new_replicas(self.d, [*old_rss, draft], draft)
        annotations = set_new_replicaset_annotations(self.d, draft, new_revision, exists=False)
        created = new_replicaset(self.d, replicas, annotations or {})
        self.create = copy.deepcopy(created)
        created["metadata"]["creationTimestamp"] = rfc3339(self.now)
        self.rss[name_of(created)] = created
        if replicas > 0:
            self.events.append(
                PlannedEvent(
                    "ScalingReplicaSet",
                    f"Scaled up replica set {name_of(created)} from 0 to {replicas}",
                )
            )
        self._set_revision(new_revision)
        if has_progress_deadline(self.d):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.NEW_REPLICA_SET,
                f'Created new replica set "{name_of(created)}"',
                self.now,
            )
            self.set_status(set_deployment_condition(self.status, condition))
        return created

    def _sync_existing(self, existing: KubeObject, new_revision: str) -> KubeObject:
        annotations = set_new_replicaset_annotations(self.d, existing, new_revision, exists=True)
        min_ready = int(_spec(self.d).get("minReadySeconds", 0) or 0)
        rs_min_ready = int(_spec(existing).get("minReadySeconds", 0) or 0)
        if annotations is not None or min_ready != rs_min_ready:
            final = annotations if annotations is not None else annotations_of(existing)
            self.updates.append(ReplicaSetUpdate(name_of(existing), dict(final), min_ready))
            updated = copy.deepcopy(existing)
            updated.setdefault("metadata", {})["annotations"] = dict(final)
            updated.setdefault("spec", {})["minReadySeconds"] = min_ready
            self.rss[name_of(updated)] = updated
            return updated
        self._set_revision(annotations_of(existing).get(REVISION_ANNOTATION, ""))
        if (
            has_progress_deadline(self.d)
            and get_deployment_condition(self.status, ConditionType.PROGRESSING) is None
        ):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.FOUND_NEW_RS,
                f'Found new replica set "{name_of(existing)}"',
                self.now,
            )
            self.set_status(set_deployment_condition(self.status, condition))
        return existing

    def _set_revision(self, value: str) -> None:
        """`SetDeploymentRevision`."""
        annotations = self.d.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(REVISION_ANNOTATION) != value:
            annotations[REVISION_ANNOTATION] = value

    def apply_scales(self, actions: Iterable[ScaleAction]) -> None:
        for action in actions:
            rs = self.rss[action.rs_name]
            if action.replicas == spec_replicas(rs) and not replicas_annotations_need_update(
                rs, self.d
            ):
                continue
            self.scales.append(action)
            self.rss[action.rs_name] = scaled_replicaset(rs, action.replicas, self.d)
            if action.replicas != action.previous:
                self.events.append(PlannedEvent("ScalingReplicaSet", action.event_message))

    def sync_rollout_status(self, new_rs: KubeObject | None, old_rss: list[KubeObject]) -> None:
        new_rs = self.rss[name_of(new_rs)] if new_rs is not None else None
        all_rss = [*self._by_name(old_rss), new_rs]
        status = sync_rollout_status(all_rss, new_rs, self.d, self.now)
        self.requeue = requeue_stuck_deployment(self.d, status, self.now)
        self.set_status(status)

    def sync_deployment_status(self, new_rs: KubeObject | None, old_rss: list[KubeObject]) -> None:
        new_rs = self.rss[name_of(new_rs)] if new_rs is not None else None
        self.set_status(
            calculate_status([*self._by_name(old_rss), new_rs], new_rs, self.d, self.now)
        )

    # -- the strategies --

    def sync(self) -> None:
        """`sync`: scaling events and paused Deployments (no new RS is created)."""
        new_rs, old_rss = self.all_and_new(create=False)
        self.apply_scales(scale(self.d, new_rs, old_rss))
        if _spec(self.d).get("paused"):
            self.deletions.extend(cleanup_deployment(self._by_name(old_rss), self.d))
        self.sync_deployment_status(new_rs, old_rss)

    def rollout_rolling(self) -> None:
        """`rolloutRolling`: scale up if we can; if we scaled, stop; else scale down."""
        new_rs, old_rss = self.all_and_new(create=True)
        assert new_rs is not None  # create=True always plans one
        scale_up = reconcile_new_replicaset([*old_rss, new_rs], new_rs, self.d)
        if scale_up is not None:
            self.apply_scales([scale_up])
            self.sync_rollout_status(new_rs, old_rss)
            return
        new_rs = self.rss[name_of(new_rs)]
        old_rss = self._by_name(old_rss)
        scale_down = reconcile_old_replicasets(
            [*old_rss, new_rs], filter_active_replicasets(old_rss), new_rs, self.d
        )
        if scale_down:
            self.apply_scales(scale_down)
            self.sync_rollout_status(new_rs, old_rss)
            return
        if deployment_complete(self.d, self.status):
            self.deletions.extend(cleanup_deployment(old_rss, self.d))
        self.sync_rollout_status(new_rs, old_rss)

    def rollout_recreate(self, pod_map: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """`rolloutRecreate`: old RSs to 0; when their pods are gone, the new RS to full size."""
        new_rs, old_rss = self.all_and_new(create=False)
        scale_down = scale_down_old_replicasets_for_recreate(filter_active_replicasets(old_rss))
        if scale_down:
            self.apply_scales(scale_down)
            self.sync_rollout_status(new_rs, old_rss)
            return
        if old_pods_running(new_rs, old_rss, pod_map):
            self.sync_rollout_status(new_rs, old_rss)
            return
        if new_rs is None:
            new_rs, old_rss = self.all_and_new(create=True)
            assert new_rs is not None
        new_rs = self.rss[name_of(new_rs)]
        if spec_replicas(new_rs) != spec_replicas(self.d):
            self.apply_scales(
                [ScaleAction(name_of(new_rs), spec_replicas(self.d), spec_replicas(new_rs))]
            )
        if deployment_complete(self.d, self.status):
            self.deletions.extend(cleanup_deployment(self._by_name(old_rss), self.d))
        self.sync_rollout_status(new_rs, old_rss)


def plan_sync(
    deployment: Mapping[str, Any],
    replicasets: Iterable[Mapping[str, Any]],
    pod_map: Mapping[str, Sequence[Mapping[str, Any]]],
    now: datetime,
) -> SyncPlan:
    """`syncDeployment` as a plan: what to write for one Deployment, given its RSs and pods.

    `replicasets` are the ones the Deployment controls (after adoption);
    `pod_map` maps each RS uid to its pods, terminating ones included.
    """
    run = _Sync(
        d=copy.deepcopy(dict(deployment)),
        rss={name_of(rs): copy.deepcopy(dict(rs)) for rs in replicasets},
        now=now,
    )
    if _meta(deployment).get("deletionTimestamp") is not None:
        new_rs, old_rss = run.all_and_new(create=False)
        run.sync_deployment_status(new_rs, old_rss)
    else:
        paused_status = check_paused_conditions(run.d, now)
        if paused_status is not None:
            run.set_status(paused_status)
        new_rs, old_rss = run.all_and_new(create=False)
        strategy = strategy_type(run.d)
        if _spec(run.d).get("paused") or is_scaling_event(run.d, [*old_rss, new_rs]):
            run.sync()
        elif strategy == RECREATE:
            run.rollout_recreate(pod_map)
        else:
            run.rollout_rolling()
    original_annotations = annotations_of(deployment)
    new_annotations = annotations_of(run.d)
    original_status = dict(deployment.get("status") or {})
    return SyncPlan(
        create_replicaset=run.create,
        replicaset_updates=tuple(run.updates),
        scales=tuple(run.scales),
        deletions=tuple(run.deletions),
        deployment_annotations=new_annotations if new_annotations != original_annotations else None,
        status=run.status if run.status != original_status else None,
        events=tuple(run.events),
        requeue_after=run.requeue,
    )
