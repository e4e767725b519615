"""The Deployment controller's shared arithmetic: upstream's
`pkg/controller/deployment/util/deployment_util.go`.

Fenceposts (maxSurge, maxUnavailable), the pod-template-hash, finding the new and old
ReplicaSets, replica counts, revisions and their annotations, the Deployment's
conditions, completeness and progress, and the proportions of a scaling event. Inputs
are plain API JSON as the store returns it; nothing reads a clock or mutates its input.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sandbox.kube.clock import parse_time, rfc3339

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


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata_of(obj).get("name", ""))


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(metadata_of(obj).get("annotations") or {})


def spec_replicas(obj: Mapping[str, Any]) -> int:
    """`*spec.replicas`; the API server defaults it to 1."""
    value = spec_of(obj).get("replicas", 1)
    return 1 if value is None else int(value)


def status_int(obj: Mapping[str, Any], key: str) -> int:
    return int((obj.get("status") or {}).get(key, 0) or 0)


def status_field(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key, 0) or 0)


def _creation_key(rs: Mapping[str, Any]) -> tuple[str, str]:
    """`ReplicaSetsByCreationTimestamp`: older first, ties by name (RFC 3339 sorts as time)."""
    return (str(metadata_of(rs).get("creationTimestamp") or ""), name_of(rs))


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
    return str((spec_of(d).get("strategy") or {}).get("type") or ROLLING_UPDATE)


def _rolling(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return (spec_of(d).get("strategy") or {}).get("rollingUpdate") or {}


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
    template = spec_of(d).get("template") or {}
    for rs in sort_by_creation(rs_list):
        if equal_ignore_hash(spec_of(rs).get("template") or {}, template):
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


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    deadline = spec_of(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def has_revision_history_limit(d: Mapping[str, Any]) -> bool:
    limit = spec_of(d).get("revisionHistoryLimit")
    return limit is not None and int(limit) != MAX_INT32


def deployment_complete(d: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """`DeploymentComplete`: all updated, no old pods, all available, generation observed.

    >>> d = {"metadata": {"generation": 1}, "spec": {"replicas": 2}}
    >>> deployment_complete(d, {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2,
    ...                         "observedGeneration": 1})
    True
    """
    replicas = spec_replicas(d)
    return (
        status_field(new_status, "updatedReplicas") == replicas
        and status_field(new_status, "replicas") == replicas
        and status_field(new_status, "availableReplicas") == replicas
        and status_field(new_status, "observedGeneration")
        >= int(metadata_of(d).get("generation", 0) or 0)
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
    old_old = status_field(old, "replicas") - status_field(old, "updatedReplicas")
    new_old = status_field(new_status, "replicas") - status_field(new_status, "updatedReplicas")
    return (
        status_field(new_status, "updatedReplicas") > status_field(old, "updatedReplicas")
        or new_old < old_old
        or status_field(new_status, "readyReplicas") > status_field(old, "readyReplicas")
        or status_field(new_status, "availableReplicas") > status_field(old, "availableReplicas")
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
    deadline = parse_time(last) + timedelta(seconds=int(spec_of(d)["progressDeadlineSeconds"]))
    return deadline < now


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
