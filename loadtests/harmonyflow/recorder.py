"""The timeline's accumulator: request events -> one record per second, type and name.

Pure (no Locust): the plugin (`plugin.py`) feeds it from `events.request` and drains
it every interval into JSON lines. Latency is kept for **successful** requests only,
as a histogram of `buckets.bucket_ms`; failures are counted with their messages.
A record is keyed by the second the request *started* in, so a reader can put it in
the right chaos window; records of the same key from several flushes or workers add up.

    >>> recorder = TimelineRecorder()
    >>> recorder.add(100.2, "GET", "/a", 12.34, error=None)
    >>> recorder.add(100.7, "GET", "/a", 1.0, error="HTTPError 503")
    >>> recorder.drain()
    [{'kind': 'requests', 't': 100, 'type': 'GET', 'name': '/a', 'ok': 1, 'fail': 1, \
'lat': {'12.3': 1}, 'errors': {'HTTPError 503': 1}, 'len': 0}]
    >>> recorder.drain()
    []
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .buckets import bucket_ms

MAX_ERROR_TEXT = 160


@dataclass
class _Cell:
    ok: int = 0
    fail: int = 0
    length: int = 0
    latency: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class TimelineRecorder:
    """Accumulates until drained; one per process (local runner or worker)."""

    def __init__(self) -> None:
        self._cells: dict[tuple[int, str, str], _Cell] = {}

    def add(
        self,
        started: float,
        request_type: str,
        name: str,
        response_time_ms: float | None,
        error: str | None,
        length: int = 0,
    ) -> None:
        key = (math.floor(started), request_type, name)
        cell = self._cells.setdefault(key, _Cell())
        cell.length += max(0, length)
        if error is not None:
            cell.fail += 1
            text = error[:MAX_ERROR_TEXT]
            cell.errors[text] = cell.errors.get(text, 0) + 1
            return
        cell.ok += 1
        if response_time_ms is not None:
            bucket = _key(bucket_ms(response_time_ms))
            cell.latency[bucket] = cell.latency.get(bucket, 0) + 1

    def drain(self) -> list[dict[str, Any]]:
        """Every record accumulated since the last drain, oldest first; then empty."""
        cells, self._cells = self._cells, {}
        return [
            {
                "kind": "requests",
                "t": t,
                "type": request_type,
                "name": name,
                "ok": cell.ok,
                "fail": cell.fail,
                "lat": cell.latency,
                "errors": cell.errors,
                "len": cell.length,
            }
            for (t, request_type, name), cell in sorted(cells.items())
        ]


def _key(value: float) -> str:
    """JSON object keys are strings: '12.3', '4320' (no '.0' noise)."""
    return f"{value:g}" if value < 1e6 else str(round(value))
