"""The loop every controller runs in: watch the store, queue keys, reconcile one at a time.

A controller says which changes concern which keys (`keys_for`) and how to
reconcile one key (`reconcile`, returning seconds until it wants to look again,
or None). Keys are deduplicated while queued, like client-go's workqueue, and
a periodic resync re-queues every key the controller knows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Protocol

from sandbox.kube.errors import ApiError
from sandbox.kube.store import Change, Store

log = logging.getLogger(__name__)


def namespaced_key(key: Hashable) -> tuple[str, str]:
    """A `(namespace, name)` work-queue key, checked.

    >>> namespaced_key(("default", "web"))
    ('default', 'web')
    """
    if not (isinstance(key, tuple) and len(key) == 2):
        raise TypeError(f"expected a (namespace, name) key, got {key!r}")
    namespace, name = key
    return str(namespace), str(name)


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """The work-queue key of an object: `(namespace, name)`, as client-go's
    `MetaNamespaceKeyFunc` (a cluster-scoped object's namespace is "")."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def emit_event(
    store: Store,
    involved: dict[str, Any],
    reason: str,
    message: str,
    *,
    event_type: str = "Normal",
    component: str = "",
) -> None:
    """Record an Event best effort, as client-go's recorder does: a refused write (say, in a
    terminating namespace) is logged and dropped instead of failing the reconcile."""
    try:
        store.record_event(involved, reason, message, event_type=event_type, component=component)
    except ApiError as error:
        log.debug("event %s for %s dropped: %s", reason, involved["metadata"].get("name"), error)


class Controller(Protocol):
    name: str

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        """Keys to reconcile because of one committed change."""
        ...

    def all_keys(self) -> Iterable[Hashable]:
        """Every key, for the initial sync and periodic resyncs."""
        ...

    def reconcile(self, key: Hashable) -> float | None:
        """Bring one key to its desired state; seconds until a re-check, or None."""
        ...


class WorkQueue:
    def __init__(self) -> None:
        self._pending: dict[Hashable, None] = {}
        self._ready = asyncio.Event()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}

    def add(self, key: Hashable) -> None:
        self._pending[key] = None
        self._ready.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        due = loop.time() + max(0.0, delay)
        if existing is not None and existing.when() <= due:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Hashable:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        key = next(iter(self._pending))
        del self._pending[key]
        return key

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


async def run_controller(
    controller: Controller,
    store: Store,
    resync_seconds: float = 30.0,
    wake: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """Run until cancelled. Errors in one reconcile are logged and retried with backoff.

    `wake` subscribes to a source of changes that are not API objects (the zones
    FIS cuts off): each one queues every key, from the loop's thread."""
    queue = WorkQueue()
    failures: dict[Hashable, int] = {}

    def on_change(change: Change) -> None:
        for key in controller.keys_for(change):
            queue.add(key)

    def on_wake() -> None:
        for key in controller.all_keys():
            queue.add(key)

    store.add_listener(on_change)
    if wake is not None:
        wake(on_wake)
    resync = asyncio.create_task(_resync(controller, queue, resync_seconds))
    try:
        while True:
            key = await queue.get()
            try:
                again = controller.reconcile(key)
                failures.pop(key, None)
            except ApiError as error:  # a conflict or a vanished object: look again soon
                attempts = failures[key] = failures.get(key, 0) + 1
                log.debug("%s: %s: %s (retry %d)", controller.name, key, error, attempts)
                again = min(0.005 * 2**attempts, 10.0)
            except Exception:
                attempts = failures[key] = failures.get(key, 0) + 1
                log.exception("%s: reconcile of %s failed", controller.name, key)
                again = min(0.05 * 2**attempts, 30.0)
            if again is not None:
                queue.add_after(key, again)
            await asyncio.sleep(0)  # let the API server and kubelets breathe
    finally:
        resync.cancel()
        queue.close()
        store.remove_listener(on_change)


async def _resync(controller: Controller, queue: WorkQueue, period: float) -> None:
    while True:
        for key in controller.all_keys():
            queue.add(key)
        await asyncio.sleep(period)
