"""The list+watch loop against a fake list call that records what it was asked.

The fake serves scripted answers in the shape the API server sends (raw JSON,
newline-delimited watch events) and blocks on the last stream the way a quiet
watch does, so stop() is tested against a reader that really waits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from resilience.observe.records import EventType, ResourceKind
from resilience.observe.timeline import Timeline
from resilience.observe.watchers import ResourceWatcher, WatchSpec, WatchTimeouts


def pod(name: str, rv: str, ready: bool = True) -> dict[str, Any]:
    status = "True" if ready else "False"
    return {
        "metadata": {"name": name, "resourceVersion": rv, "labels": {"app": "web"}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]},
    }


class FakeResponse:
    def __init__(self, body: bytes, block: bool = False) -> None:
        self.data = body
        self._block = block
        self.unblocked = threading.Event()

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield self.data
        if self._block:
            self.unblocked.wait(30)

    def shutdown(self) -> None:
        self.unblocked.set()

    def close(self) -> None:
        self.unblocked.set()

    def release_conn(self) -> None:
        pass


class FakeListCall:
    """Answers LIST and WATCH from a script; records every call's arguments."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[list[dict[str, Any]]]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[dict[str, Any]] = []
        self.exhausted = threading.Event()

    def __call__(self, namespace: str, **kwargs: Any) -> FakeResponse:
        self.calls.append({"namespace": namespace, **kwargs})
        if not kwargs.get("watch"):
            return FakeResponse(json.dumps(self.lists.pop(0)).encode())
        if not self.watches:
            self.exhausted.set()
            return FakeResponse(b"", block=True)
        lines = b"".join(json.dumps(e).encode() + b"\n" for e in self.watches.pop(0))
        return FakeResponse(lines)


def test_list_watch_resume_and_relist_after_gone() -> None:
    fake = FakeListCall(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [pod("a", "5"), pod("b", "6")]},
            {"metadata": {"resourceVersion": "30"}, "items": [pod("a", "21", ready=False)]},
        ],
        watches=[
            [
                {"type": "MODIFIED", "object": pod("a", "11", ready=False)},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
            ],  # the stream ends: resume from 15
            [
                {"type": "ADDED", "object": pod("c", "16")},
                {"type": "ERROR", "object": {"code": 410, "message": "too old"}},
            ],  # 410: list again
        ],
    )
    timeline = Timeline()
    relisted: list[WatchSpec] = []
    watcher = ResourceWatcher(
        WatchSpec(ResourceKind.POD, fake, "ns", label_selector="app=web"),
        timeline,
        WatchTimeouts(connect_seconds=1, read_seconds=2, server_seconds=60),
        on_relist=relisted.append,
    )
    watcher.start()
    try:
        assert fake.exhausted.wait(10), "the watcher never reached the last stream"
    finally:
        assert watcher.stop(timeout=5), "stop() did not end the thread"
    seen = [(e.type, e.name, e.relisted) for e in timeline.events]
    assert seen == [
        (EventType.LISTED, "a", False),
        (EventType.LISTED, "b", False),
        (EventType.MODIFIED, "a", False),
        (EventType.ADDED, "c", False),
        (EventType.LISTED, "a", True),  # changed while we were away
        (EventType.DELETED, "b", True),  # gone while we were away
        (EventType.DELETED, "c", True),
    ]
    watch_versions = [c.get("resource_version") for c in fake.calls if c.get("watch")]
    assert watch_versions == ["10", "15", "30"]
    assert all(c["label_selector"] == "app=web" for c in fake.calls)
    assert all(c["_request_timeout"] == (1, 2) for c in fake.calls)
    assert all(c["timeout_seconds"] == 60 for c in fake.calls if c.get("watch"))
    assert watcher.relists == 1 and len(relisted) == 1
    assert watcher.synced.is_set() and not watcher.failures


def test_a_failing_list_is_retried_and_recorded() -> None:
    class Refusing:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, namespace: str, **kwargs: Any) -> Any:
            self.calls += 1
            raise OSError("connection refused")

    refusing = Refusing()
    watcher = ResourceWatcher(
        WatchSpec(ResourceKind.POD, refusing, "ns"),
        Timeline(),
        WatchTimeouts(max_backoff_seconds=0.05),
    )
    watcher.start()
    try:
        assert not watcher.synced.wait(0.5)
    finally:
        assert watcher.stop(timeout=5)
    assert refusing.calls >= 2
    assert watcher.failures and "connection refused" in watcher.failures[0].message
