"""One list+watch loop per resource, in a background thread, feeding the timeline.

The loop is the informer pattern, written out so that every wait is bounded:

1. LIST (records every object as LISTED) and remember the list's resourceVersion;
2. WATCH from it with `allowWatchBookmarks`, a server-side `timeoutSeconds` and a
   client read timeout; every event is reduced and recorded, every event and
   BOOKMARK moves the resourceVersion on;
3. when the stream ends (server timeout, read timeout on a quiet stream, a
   dropped connection) WATCH again from the last resourceVersion -- no replay;
4. on 410 Gone (ERROR event or HTTP status) LIST again, record what changed as
   LISTED and what vanished as DELETED, both flagged `relisted` because the
   events in between were missed.

`stop()` shuts the open response's socket, so a thread blocked in a read
returns at once; the join is bounded all the same. Raw JSON is read
(`_preload_content=False`), never the client's models: the reducers take the
API's own shape, and nothing is lost to model validation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from resilience.observe.records import EventType, Observation, ResourceKind
from resilience.observe.reduce import REDUCERS, Json
from resilience.observe.timeline import Timeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchTimeouts:
    connect_seconds: float = 5.0
    # A stream silent for this long is reopened from the last resourceVersion
    # (servers send BOOKMARKs about once a minute, so keep it above that on EKS
    # if reconnect noise matters; reopening is cheap and loses nothing).
    read_seconds: float = 30.0
    # `timeoutSeconds`: the server ends the stream after this; we resume.
    server_seconds: int = 300
    max_backoff_seconds: float = 5.0

    @property
    def request_timeout(self) -> tuple[float, float]:
        return (self.connect_seconds, self.read_seconds)


DEFAULT_TIMEOUTS = WatchTimeouts()


@dataclass(frozen=True)
class WatchSpec:
    """What to watch: a list method of the typed client and its scope."""

    kind: ResourceKind
    list_call: Callable[..., Any]
    namespace: str | None = None  # None: cluster-scoped (nodes)
    label_selector: str | None = None
    field_selector: str | None = None

    def describe(self) -> str:
        scope = "cluster-wide" if self.namespace is None else f"in {self.namespace}"
        selector = "".join(
            f" {flag} {value}"
            for flag, value in (
                ("-l", self.label_selector),
                ("--field-selector", self.field_selector),
            )
            if value
        )
        return f"{self.kind.value} {scope}{selector}"

    def call(self, **kwargs: Any) -> Any:
        if self.label_selector:
            kwargs["label_selector"] = self.label_selector
        if self.field_selector:
            kwargs["field_selector"] = self.field_selector
        args = () if self.namespace is None else (self.namespace,)
        return self.list_call(*args, _preload_content=False, **kwargs)


@dataclass(frozen=True)
class WatchFailure:
    """Something a watch could not do; it retries, the failure stays on record."""

    kind: ResourceKind
    wall: float
    message: str


class _Gone(Exception):
    """410 Gone: the resourceVersion left the server's window; list again."""


class _StreamError(Exception):
    """An ERROR event other than 410."""


class ResourceWatcher:
    """A background list+watch of one resource kind, recording into a timeline."""

    def __init__(
        self,
        spec: WatchSpec,
        timeline: Timeline,
        timeouts: WatchTimeouts = DEFAULT_TIMEOUTS,
        on_relist: Callable[[WatchSpec], None] | None = None,
    ) -> None:
        self.spec = spec
        self.timeline = timeline
        self.timeouts = timeouts
        self.synced = threading.Event()
        self.failures: list[WatchFailure] = []
        self.relists = 0
        self.reconnects = 0
        self._reduce = REDUCERS[spec.kind]
        self._on_relist = on_relist
        self._stopping = threading.Event()
        self._response_lock = threading.Lock()
        self._response: Any = None
        self._resource_version: str | None = None
        self._last: dict[str, Observation] = {}
        self._listed_once = False
        self._thread = threading.Thread(
            target=self._run, name=f"observe-{spec.kind.value}", daemon=True
        )

    # ---- lifecycle ----

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join; True if the thread ended within `timeout`."""
        self._stopping.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            _shutdown(response)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- the loop ----

    def _run(self) -> None:
        failures_in_a_row = 0
        while not self._stopping.is_set():
            try:
                if self._resource_version is None:
                    self._relist()
                self._follow()
                failures_in_a_row = 0
            except _Gone:
                self._resource_version = None
            except ApiException as error:
                if error.status == 410:
                    self._resource_version = None
                    continue
                failures_in_a_row += 1
                self._fail(f"HTTP {error.status} {error.reason}: {_short(error.body)}")
            except urllib3.exceptions.ReadTimeoutError:
                self.reconnects += 1  # a quiet stream; resume from the last resourceVersion
            except (urllib3.exceptions.HTTPError, OSError, ValueError, _StreamError) as error:
                if self._stopping.is_set():
                    break
                failures_in_a_row += 1
                self._fail(f"{type(error).__name__}: {error}")
            if failures_in_a_row:
                delay = min(self.timeouts.max_backoff_seconds, 0.2 * 2 ** (failures_in_a_row - 1))
                self._stopping.wait(delay)

    def _relist(self) -> None:
        response = self.spec.call(_request_timeout=self.timeouts.request_timeout)
        body = json.loads(response.data)
        relisted = self._listed_once
        seen: dict[str, Observation] = {}
        for item in body.get("items") or []:
            observation = self._reduce(item)
            seen[observation.name] = observation
            previous = self._last.get(observation.name)
            if previous is None or previous.resource_version != observation.resource_version:
                self.timeline.record(EventType.LISTED, observation, relisted=relisted)
        for name in sorted(set(self._last) - set(seen)):
            self.timeline.record(EventType.DELETED, self._last[name], relisted=True)
        self._last = seen
        self._resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if relisted:
            self.relists += 1
            if self._on_relist is not None:
                self._on_relist(self.spec)
        self._listed_once = True
        self.synced.set()

    def _follow(self) -> None:
        response = self.spec.call(
            watch=True,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.timeouts.server_seconds,
            _request_timeout=self.timeouts.request_timeout,
        )
        with self._response_lock:
            self._response = response
        try:
            if self._stopping.is_set():
                return
            for line in _lines(response):
                if self._stopping.is_set():
                    return
                if line:
                    self._handle(json.loads(line))
            self.reconnects += 1
        finally:
            with self._response_lock:
                self._response = None
            # Closed, not returned half-read: a pooled connection must start clean.
            response.close()
            response.release_conn()

    def _handle(self, event: Json) -> None:
        type_ = event.get("type")
        obj: Mapping[str, Any] = event.get("object") or {}
        if type_ == "BOOKMARK":
            self._resource_version = str((obj.get("metadata") or {}).get("resourceVersion"))
            return
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise _Gone(obj.get("message"))
            raise _StreamError(f"watch ERROR {obj.get('code')}: {obj.get('message')}")
        observation = self._reduce(obj)
        event_type = EventType(str(type_))
        self.timeline.record(event_type, observation)
        if event_type is EventType.DELETED:
            self._last.pop(observation.name, None)
        else:
            self._last[observation.name] = observation
        self._resource_version = observation.resource_version or self._resource_version

    def _fail(self, message: str) -> None:
        self.failures.append(WatchFailure(self.spec.kind, time.time(), message))
        log.warning("watch of %s: %s (retrying)", self.spec.describe(), message)


def _lines(response: Any) -> Iterator[str]:
    """Newline-delimited JSON out of a chunked response, as the client's own Watch reads it."""
    buffer = bytearray()
    for segment in response.stream(amt=None, decode_content=False):
        buffer.extend(segment if isinstance(segment, bytes) else str(segment).encode())
        while (newline := buffer.find(b"\n")) != -1:
            line = buffer[:newline].decode("utf-8", errors="replace").strip()
            del buffer[: newline + 1]
            yield line
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace").strip()


def _shutdown(response: Any) -> None:
    """Unblock a reader in another thread: SHUT_RD on the response's socket."""
    with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
        response.shutdown()


def _short(body: Any, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = None
    text = str(message or text)
    return text if len(text) <= limit else text[:limit] + "..."
