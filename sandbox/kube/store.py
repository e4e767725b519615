"""The object store: the only place that mutates API objects.

Semantics follow the API server: uid, creationTimestamp, one global
monotonically increasing resourceVersion, generation bumped when anything
outside metadata and status changes, optimistic concurrency on
resourceVersion, status kept apart from the main resource where a `status`
subresource exists, graceful deletion and finalizers, and a bounded history so
that a watch from resourceVersion X replays only later changes (or is told
410 Expired when X has left the window).

It is synchronous and lives on the event loop thread: every method runs to
completion before another starts, which is what makes its writes atomic.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sandbox.kube import admission
from sandbox.kube.clock import Clock, RealClock, rfc3339
from sandbox.kube.clusterips import ClusterIpAllocator
from sandbox.kube.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    expired,
    not_found,
)
from sandbox.kube.podidentity import PodIdentitySettings
from sandbox.kube.resources import ResourceType, by_key
from sandbox.kube.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
KubeObjects = list[KubeObject]  # named before `Store.list` shadows the builtin
T = TypeVar("T")
Listener = Callable[["Change"], None]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
DEFAULT_HISTORY = 20_000
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet


@dataclass(frozen=True)
class Change:
    """One committed write, as listeners and the watch history see it."""

    resource_version: int
    resource: str
    type: str
    object: KubeObject
    old: KubeObject | None


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED MODIFIED DELETED BOOKMARK ERROR
    object: KubeObject


@dataclass
class Watch:
    """A live subscription; events are already filtered and typed for this watcher."""

    resource: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def offer(self, change: Change) -> None:
        event = self.translate(change)
        if event is not None:
            self.queue.put_nowait(event)

    def translate(self, change: Change) -> WatchEvent | None:
        """Moving into or out of the selection is ADDED or DELETED, as upstream."""
        if change.resource != self.resource.key:
            return None
        now_matches = change.type != DELETED and self._matches(change.object)
        was_matching = change.old is not None and self._matches(change.old)
        if change.type == DELETED:
            return WatchEvent(DELETED, change.object) if self._matches(change.object) else None
        if now_matches and was_matching:
            return WatchEvent(MODIFIED, change.object)
        if now_matches:
            return WatchEvent(ADDED, change.object)
        if was_matching:
            return WatchEvent(DELETED, change.object)
        return None

    def _matches(self, obj: KubeObject) -> bool:
        metadata = obj.get("metadata", {})
        if self.namespace and metadata.get("namespace") != self.namespace:
            return False
        return self.labels.matches(metadata.get("labels")) and self.fields.matches(obj)


class Store:
    def __init__(
        self,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        history_limit: int = DEFAULT_HISTORY,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        # kube-apiserver --default-{not-ready,unreachable}-toleration-seconds
        self.default_toleration_seconds = admission.DEFAULT_TOLERATION_SECONDS
        # the service registry's ClusterIP allocator (the control plane claims them machine-wide)
        self.cluster_ips = ClusterIpAllocator()
        self.rng = rng or random.Random()
        # EKS's pod identity webhook, where the sandbox serves AWS (the control plane sets it)
        self.pod_identity: PodIdentitySettings | None = None
        self._objects: dict[str, dict[tuple[str, str], KubeObject]] = {}
        self._resource_version = 0
        self._history: deque[Change] = deque(maxlen=history_limit)
        self._watches: list[Watch] = []
        self._listeners: list[Listener] = []
        # (involved uid, reason, message) -> the Event that counts its repeats
        self._event_series: dict[tuple[Any, str, str], tuple[str, str]] = {}

    # ---- reads ----

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def get(self, resource: str, namespace: str, name: str) -> KubeObject:
        found = self.find(resource, namespace, name)
        if found is None:
            rt = by_key(resource)
            raise not_found(rt.plural, name, rt.group)
        return found

    def find(self, resource: str, namespace: str, name: str) -> KubeObject | None:
        obj = self._table(resource).get((namespace if by_key(resource).namespaced else "", name))
        return _copy(obj) if obj is not None else None

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        labels: str | LabelSelector | None = None,
        fields: str | FieldSelector | None = None,
    ) -> KubeObjects:
        """Matching objects sorted by namespace and name, as copies the caller may change."""
        found = self.snapshot(resource, namespace, labels, fields)
        found.sort(key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        return [_copy(obj) for obj in found]

    def snapshot(
        self,
        resource: str,
        namespace: str | None = None,
        labels: str | LabelSelector | None = None,
        fields: str | FieldSelector | None = None,
    ) -> KubeObjects:
        """Matching objects themselves, unsorted: **read-only**, like an informer's cache.

        For controllers that only read (and pass what they read to pure functions);
        copying a thousand pods on every reconcile is what made lists slow.
        """
        label_selector = _labels(labels)
        field_selector = _fields(fields, resource)
        items = []
        for (obj_namespace, _), obj in self._table(resource).items():
            if namespace and obj_namespace != namespace:
                continue
            if not label_selector.matches(obj["metadata"].get("labels")):
                continue
            if not field_selector.matches(obj):
                continue
            items.append(obj)
        return items

    # ---- writes ----

    def create(self, resource: str, obj: KubeObject) -> KubeObject:
        rt = by_key(resource)
        obj = _copy(obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        metadata = obj.setdefault("metadata", {})
        namespace = self._namespace_for_create(rt, metadata)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = self._generate_name(rt, namespace, metadata["generateName"])
        # System fields first: the Job strategy derives its selector from the uid.
        metadata.update(
            uid=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            creationTimestamp=rfc3339(self.clock.now()),
        )
        admission.prepare_create(rt, obj, self)
        admission.validate(rt, obj, None)
        name = metadata["name"]
        if (namespace, name) in self._table(resource):
            raise already_exists(rt.plural, name, rt.group)
        for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(server_owned, None)
        if rt.tracks_generation:
            metadata["generation"] = 1
        return self._commit(rt, ADDED, obj, None)

    def update(
        self, resource: str, obj: KubeObject, *, subresource: str | None = None
    ) -> KubeObject:
        """PUT semantics: optimistic concurrency when resourceVersion is given."""
        rt = by_key(resource)
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace", "") if rt.namespaced else ""
        name = metadata.get("name")
        if not name:
            raise bad_request("name is required in metadata")
        old = self._table(resource).get((namespace, name))
        if old is None:
            raise not_found(rt.plural, name, rt.group)
        wanted_version = metadata.get("resourceVersion")
        if wanted_version and str(wanted_version) != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        new = self._merge_for_update(rt, old, _copy(obj), subresource)
        if subresource is None:
            admission.prepare_update(rt, new, old)
        admission.validate(rt, new, old)
        if _without_version(new) == _without_version(old):
            return _copy(old)  # a no-op write changes nothing, as upstream
        if _last_finalizer_removed(old, new):
            return self._remove(rt, new)
        return self._commit(rt, MODIFIED, new, old)

    def mutate(
        self,
        resource: str,
        namespace: str,
        name: str,
        change: Callable[[KubeObject], None],
        *,
        subresource: str | None = None,
    ) -> KubeObject:
        """Read, change a copy in place, write: the controllers' read-modify-write."""
        obj = self.get(resource, namespace, name)
        change(obj)
        return self.update(resource, obj, subresource=subresource)

    def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> KubeObject:
        """Graceful where the kind has it (pods), immediate otherwise; finalizers hold it."""
        rt = by_key(resource)
        key = (namespace if rt.namespaced else "", name)
        old = self._table(resource).get(key)
        if old is None:
            raise not_found(rt.plural, name, rt.group)
        if uid and old["metadata"]["uid"] != uid:
            raise conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {old['metadata']['uid']}",
            )
        if resource_version and resource_version != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        grace = admission.deletion_grace_seconds(rt, old, grace_period_seconds)
        if grace == 0 and not _pending_finalizers(old):
            return self._remove(rt, _copy(old))
        new = _copy(old)
        metadata = new["metadata"]
        deadline = self.clock.now() + timedelta(seconds=grace)
        current = metadata.get("deletionGracePeriodSeconds")
        if metadata.get("deletionTimestamp") is None or (current is not None and grace < current):
            metadata["deletionTimestamp"] = rfc3339(deadline)
            metadata["deletionGracePeriodSeconds"] = grace
        if rt.tracks_generation:
            metadata["generation"] = int(metadata.get("generation", 1)) + 1
        admission.on_delete_marked(rt, new)
        if _without_version(new) == _without_version(old):
            return _copy(old)
        return self._commit(rt, MODIFIED, new, old)

    # ---- watch ----

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        labels: str | LabelSelector | None = None,
        fields: str | FieldSelector | None = None,
        resource_version: str | None = None,
    ) -> Watch:
        """Subscribe; with no (or "0") resourceVersion, every current object arrives as ADDED."""
        rt = by_key(resource)
        watch = Watch(rt, namespace, _labels(labels), _fields(fields, resource))
        if resource_version in (None, "", "0"):
            for obj in self.list(resource, namespace, watch.labels, watch.fields):
                watch.queue.put_nowait(WatchEvent(ADDED, obj))
        else:
            since = _parse_version(resource_version)
            oldest = (
                self._history[0].resource_version if self._history else self._resource_version + 1
            )
            if since < oldest - 1 and since < self._resource_version:
                raise expired(f"too old resource version: {since} ({oldest - 1})")
            for change in self._history:
                if change.resource_version > since:
                    watch.offer(change)
        self._watches.append(watch)
        return watch

    def stop_watch(self, watch: Watch) -> None:
        watch.closed = True
        if watch in self._watches:
            self._watches.remove(watch)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ---- events ----

    def record_event(
        self,
        involved: KubeObject,
        reason: str,
        message: str,
        *,
        event_type: str = "Normal",
        component: str = "",
        host: str = "",
    ) -> None:
        """A core/v1 Event about `involved`; repeats within the object bump `count`.

        Best effort, like client-go's event recorder: an event that cannot be
        written (its namespace is terminating, say) is dropped.
        """
        try:
            self._record_event(involved, reason, message, event_type, component, host)
        except ApiError as error:
            log.debug("event %s on %s dropped: %s", reason, involved["metadata"].get("name"), error)

    def _record_event(
        self,
        involved: KubeObject,
        reason: str,
        message: str,
        event_type: str,
        component: str,
        host: str,
    ) -> None:
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        now = rfc3339(self.clock.now())
        series = (metadata.get("uid"), reason, message)
        where = self._event_series.get(series)
        existing = self.find("events", *where) if where is not None else None
        if existing is not None:
            bumped = existing
            bumped["count"] = int(bumped.get("count", 1)) + 1
            bumped["lastTimestamp"] = now
            self.update("events", bumped)
            return
        event = {
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": namespace,
            },
            "involvedObject": {
                "kind": involved.get("kind"),
                "namespace": metadata.get("namespace", ""),
                "name": metadata["name"],
                "uid": metadata.get("uid"),
                "apiVersion": involved.get("apiVersion"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component, **({"host": host} if host else {})},
            "reportingComponent": component,
            "reportingInstance": host,
        }
        created = self.create("events", event)
        self._event_series[series] = (namespace, created["metadata"]["name"])

    # ---- internals ----

    def _table(self, resource: str) -> dict[tuple[str, str], KubeObject]:
        return self._objects.setdefault(resource, {})

    def _namespace_for_create(self, rt: ResourceType, metadata: KubeObject) -> str:
        if not rt.namespaced:
            metadata.pop("namespace", None)
            return ""
        namespace = metadata.get("namespace") or "default"
        metadata["namespace"] = namespace
        ns = self._table("namespaces").get(("", namespace))
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.plural} "{metadata.get("name", "")}" is forbidden: unable to create new '
                f"content in namespace {namespace} because it is being terminated",
            )
        return namespace

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(100):
            suffix = "".join(self.rng.choice(_NAME_ALPHABET) for _ in range(5))
            if (namespace, prefix + suffix) not in self._table(rt.key):
                return prefix + suffix
        raise already_exists(rt.plural, prefix, rt.group)

    def _merge_for_update(
        self, rt: ResourceType, old: KubeObject, new: KubeObject, subresource: str | None
    ) -> KubeObject:
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        old_meta = old["metadata"]
        if subresource == "status":
            merged = _copy(old)
            merged["status"] = new.get("status", {})
            return merged
        metadata = new.setdefault("metadata", {})
        for owned in (
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if owned in old_meta:
                metadata[owned] = old_meta[owned]
            else:
                metadata.pop(owned, None)
        if rt.has_status:
            if "status" in old:
                new["status"] = _copy(old["status"])
            else:
                new.pop("status", None)
        # Without a status subresource, status is part of the spec: a custom resource's
        # generation counts its changes too (apiextensions customresource strategy).
        changed = _spec_of(new) != _spec_of(old) or (
            not rt.has_status and new.get("status") != old.get("status")
        )
        if rt.tracks_generation and changed:
            metadata["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    def _commit(
        self, rt: ResourceType, kind: str, obj: KubeObject, old: KubeObject | None
    ) -> KubeObject:
        self._resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self._resource_version)
        key = (
            obj["metadata"].get("namespace", "") if rt.namespaced else "",
            obj["metadata"]["name"],
        )
        self._table(rt.key)[key] = obj
        self._publish(Change(self._resource_version, rt.key, kind, obj, old))
        return _copy(obj)

    def _remove(self, rt: ResourceType, obj: KubeObject) -> KubeObject:
        key = (
            obj["metadata"].get("namespace", "") if rt.namespaced else "",
            obj["metadata"]["name"],
        )
        old = self._table(rt.key).pop(key)
        self._resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self._resource_version)
        self._publish(Change(self._resource_version, rt.key, DELETED, obj, old))
        return _copy(obj)

    def _publish(self, change: Change) -> None:
        self._history.append(change)
        for watch in list(self._watches):
            watch.offer(change)
        for listener in list(self._listeners):
            listener(change)


def _copy(obj: T) -> T:
    """A deep copy of JSON data; marshal round-trips plain dicts and lists many times faster
    than `copy.deepcopy`, and the store copies on every read."""
    copied: T = marshal.loads(marshal.dumps(obj))  # type: ignore[arg-type]
    return copied


def _labels(labels: str | LabelSelector | None) -> LabelSelector:
    return labels if isinstance(labels, LabelSelector) else parse_label_selector(labels)


def _fields(fields: str | FieldSelector | None, resource: str) -> FieldSelector:
    return fields if isinstance(fields, FieldSelector) else parse_field_selector(fields, resource)


def _parse_version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"invalid resource version: {text!r}") from None
    if value < 0:
        raise bad_request(f"invalid resource version: {text!r}")
    return value


def _pending_finalizers(obj: KubeObject) -> list[str]:
    """metadata.finalizers, plus a namespace's spec.finalizers (`kubernetes`)."""
    pending = list(obj["metadata"].get("finalizers") or [])
    if obj.get("kind") == "Namespace":
        pending += (obj.get("spec") or {}).get("finalizers") or []
    return pending


def _last_finalizer_removed(old: KubeObject, new: KubeObject) -> bool:
    metadata = new["metadata"]
    if not metadata.get("deletionTimestamp") or _pending_finalizers(new):
        return False
    if not _pending_finalizers(old):
        return False
    # A pod still inside its grace period is removed by its kubelet, not here.
    return not metadata.get("deletionGracePeriodSeconds")


def _spec_of(obj: KubeObject) -> KubeObject:
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def _without_version(obj: KubeObject) -> KubeObject:
    trimmed = dict(obj)
    trimmed["metadata"] = {
        k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"
    }
    return trimmed


def iter_owned_by(objects: Iterable[KubeObject], owner_uid: str) -> Iterable[KubeObject]:
    for obj in objects:
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("uid") == owner_uid:
                yield obj
                break
