"""Garbage collection by ownerReferences, and namespace deletion.

Background cascading deletion (`pkg/controller/garbagecollector`): a dependent all
of whose owners are gone (no object with that kind, name and uid) is deleted,
pods gracefully, with a uid precondition; a dependent with some owners gone and some
present loses only the dangling references. An owner of a kind the emulator does
not serve is assumed present. Orphan and Foreground propagation are out of scope.

Namespace deletion (`pkg/controller/namespace`): a namespace with a
deletionTimestamp has every namespaced object in it deleted, the five
NamespaceDeletion* / *Remaining conditions kept in its status, and once nothing is
left its `kubernetes` entry of spec.finalizers removed and the namespace deleted.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.kube.clock import Clock, rfc3339
from sandbox.kube.errors import ApiError
from sandbox.kube.podutil import with_condition
from sandbox.kube.resources import EVENTS_V1_KEY, RESOURCES, ResourceType, for_kind
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]
ObjectKey = tuple[str, str, str]  # (resource, namespace or "", name)

NAMESPACE_FINALIZER = "kubernetes"
CONTENT_RETRY_SECONDS = 1.0


# ---- pure decisions ----


@dataclass(frozen=True)
class OwnerVerdict:
    """What to do with a dependent: "keep", "delete" (every owner gone) or "prune"."""

    action: str
    dangling: tuple[str, ...] = ()  # uids of owners that are gone


def judge_owners(
    owner_refs: Sequence[Mapping[str, Any]], present: Mapping[str, bool | None]
) -> OwnerVerdict:
    """Decide from which owner uids still exist (None: the kind is unknown, assume present).

    >>> refs = [{"uid": "a"}, {"uid": "b"}]
    >>> judge_owners(refs, {"a": False, "b": False})
    OwnerVerdict(action='delete', dangling=('a', 'b'))
    >>> judge_owners(refs, {"a": False, "b": True})
    OwnerVerdict(action='prune', dangling=('a',))
    >>> judge_owners(refs, {"a": None, "b": False}).action
    'prune'
    """
    if not owner_refs:
        return OwnerVerdict("keep")
    dangling = tuple(
        str(ref.get("uid")) for ref in owner_refs if present.get(str(ref.get("uid"))) is False
    )
    if not dangling:
        return OwnerVerdict("keep")
    if len(dangling) == len(owner_refs):
        return OwnerVerdict("delete", dangling)
    return OwnerVerdict("prune", dangling)


def owner_resource(ref: Mapping[str, Any], dependent_namespace: str) -> tuple[str, str] | None:
    """(resource key, namespace) where the owner lives; None for kinds not served."""
    rt = for_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
    if rt is None:
        return None
    return rt.key, dependent_namespace if rt.namespaced else ""


def namespace_conditions(
    old: Sequence[Mapping[str, Any]],
    remaining: Mapping[str, int],
    finalizers: Mapping[str, int],
    now: str,
) -> list[KubeObject]:
    """The namespace controller's five deletion conditions.

    `remaining` counts objects left per resource ("pods." for core, "deployments.apps"),
    `finalizers` objects left per finalizer.

    >>> [c["message"] for c in namespace_conditions([], {"pods.": 2}, {}, "T")][3]
    'Some resources are remaining: pods. has 2 resource instances'
    """
    content = sorted(
        f"{resource} has {count} resource instances"
        for resource, count in remaining.items()
        if count
    )
    by_finalizer = sorted(
        f"{finalizer} in {count} resource instances"
        for finalizer, count in finalizers.items()
        if count
    )
    wanted = [
        (
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        (
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        (
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: " + ", ".join(content),
        )
        if content
        else (
            "NamespaceContentRemaining",
            "False",
            "ContentRemoved",
            "All content successfully removed",
        ),
        (
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: " + ", ".join(by_finalizer),
        )
        if by_finalizer
        else (
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    ]
    conditions = [dict(c) for c in old]
    for kind, status, reason, message in wanted:
        conditions = with_condition(
            conditions, {"type": kind, "status": status, "reason": reason, "message": message}, now
        )
    return conditions


def namespaced_resources() -> list[ResourceType]:
    """Everything a namespace can hold (the events.k8s.io view of Events only once)."""
    return [rt for rt in RESOURCES if rt.namespaced and rt.stored and rt.key != EVENTS_V1_KEY]


# ---- the controller ----


def _owner_uids(obj: Mapping[str, Any]) -> frozenset[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return frozenset(str(ref.get("uid")) for ref in refs if ref.get("uid"))


def _object_key(resource: str, obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return resource, metadata.get("namespace", "") or "", metadata.get("name", "")


def _as_object_key(key: Hashable) -> ObjectKey:
    if not isinstance(key, tuple) or len(key) != 3:
        raise TypeError(f"expected (resource, namespace, name), got {key!r}")
    return str(key[0]), str(key[1]), str(key[2])


class GarbageCollector:
    """Deletes dependents of vanished owners and empties terminating namespaces."""

    name = "garbagecollector"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._dependents: dict[str, set[ObjectKey]] = {}  # owner uid -> dependents
        self._owners: dict[ObjectKey, frozenset[str]] = {}  # dependent -> owner uids
        self._terminating: set[str] = set()  # namespaces being deleted

    # -- what to look at --

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == EVENTS_V1_KEY:
            return []
        key = _object_key(change.resource, change.object)
        namespace = key[1]
        keys: list[ObjectKey] = []
        if change.type == DELETED:
            self._index(key, frozenset())
            uid = str((change.object.get("metadata") or {}).get("uid", ""))
            keys.extend(sorted(self._dependents.pop(uid, set())))
            if change.resource == "namespaces":
                self._terminating.discard(key[2])
        else:
            uids = _owner_uids(change.object)
            if uids and uids != self._owners.get(key):
                keys.append(key)
            self._index(key, uids)
            if change.resource == "namespaces" and (change.object.get("metadata") or {}).get(
                "deletionTimestamp"
            ):
                self._terminating.add(key[2])
                keys.append(("namespaces", "", key[2]))
        if namespace in self._terminating:
            keys.append(("namespaces", "", namespace))
        return keys

    def all_keys(self) -> Iterable[Hashable]:
        self._dependents.clear()
        self._owners.clear()
        self._terminating.clear()
        keys: list[ObjectKey] = []
        for rt in RESOURCES:
            if not rt.stored or rt.key == EVENTS_V1_KEY:
                continue
            for obj in self.store.list(rt.key):
                key = _object_key(rt.key, obj)
                uids = _owner_uids(obj)
                if uids:
                    self._index(key, uids)
                    keys.append(key)
                if rt.key == "namespaces" and obj["metadata"].get("deletionTimestamp"):
                    self._terminating.add(key[2])
                    keys.append(key)
        return keys

    def _index(self, key: ObjectKey, uids: frozenset[str]) -> None:
        for uid in self._owners.pop(key, frozenset()):
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[uid]
        if uids:
            self._owners[key] = uids
            for uid in uids:
                self._dependents.setdefault(uid, set()).add(key)

    # -- what to do --

    def reconcile(self, key: Hashable) -> float | None:
        resource, namespace, name = _as_object_key(key)
        if resource == "namespaces":
            return self._finalize_namespace(name)
        return self._collect(resource, namespace, name)

    def _collect(self, resource: str, namespace: str, name: str) -> float | None:
        obj = self.store.find(resource, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        refs = obj["metadata"].get("ownerReferences") or []
        verdict = judge_owners(
            refs, {str(ref.get("uid")): self._owner_present(ref, namespace) for ref in refs}
        )
        if verdict.action == "delete":
            self._delete_quietly(resource, namespace, name, uid=obj["metadata"]["uid"])
        elif verdict.action == "prune":

            def prune(current: KubeObject) -> None:
                current["metadata"]["ownerReferences"] = [
                    ref
                    for ref in current["metadata"].get("ownerReferences") or []
                    if str(ref.get("uid")) not in verdict.dangling
                ]

            self.store.mutate(resource, namespace, name, prune)
        return None

    def _owner_present(self, ref: Mapping[str, Any], namespace: str) -> bool | None:
        where = owner_resource(ref, namespace)
        if where is None:
            return None
        owner = self.store.find(where[0], where[1], str(ref.get("name", "")))
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def _finalize_namespace(self, name: str) -> float | None:
        namespace = self.store.find("namespaces", "", name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            self._terminating.discard(name)
            return None
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for rt in namespaced_resources():
            for obj in self.store.list(rt.key, namespace=name):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete_quietly(rt.key, name, obj["metadata"]["name"])
            for obj in self.store.list(rt.key, namespace=name):
                label = f"{rt.plural}.{rt.group}"
                remaining[label] = remaining.get(label, 0) + 1
                for finalizer in obj["metadata"].get("finalizers") or []:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        now = rfc3339(self.clock.now())
        conditions = namespace_conditions(
            (namespace.get("status") or {}).get("conditions") or [], remaining, finalizers, now
        )
        if conditions != (namespace.get("status") or {}).get("conditions"):

            def set_conditions(obj: KubeObject) -> None:
                obj.setdefault("status", {})["conditions"] = conditions

            namespace = self.store.mutate(
                "namespaces", "", name, set_conditions, subresource="status"
            )
        if remaining:
            return CONTENT_RETRY_SECONDS
        spec_finalizers = (namespace.get("spec") or {}).get("finalizers") or []
        if NAMESPACE_FINALIZER in spec_finalizers:

            def finalize(obj: KubeObject) -> None:
                obj["spec"]["finalizers"] = [
                    f for f in obj["spec"].get("finalizers") or [] if f != NAMESPACE_FINALIZER
                ]

            namespace = self.store.mutate("namespaces", "", name, finalize)
        if not (namespace.get("spec") or {}).get("finalizers"):
            # Other spec.finalizers belong to other controllers; metadata.finalizers still
            # hold the namespace in the store until they are removed.
            self._delete_quietly("namespaces", "", name, grace_period_seconds=0)
        return None

    def _delete_quietly(
        self,
        resource: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> None:
        try:
            self.store.delete(
                resource, namespace, name, uid=uid, grace_period_seconds=grace_period_seconds
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise
