"""The timeline plugin: Locust request events -> JSON lines, one record per second.

Enabled by `--timeline-file PATH` (or `HF_TIMELINE_FILE`); without it the
locustfiles run as plain Locust. The file is what `resilience.load` reads while the
run goes on (see `resilience/load/requests.py` for the format):

- local runner: a greenlet appends the records every INTERVAL seconds;
- distributed (`--processes N`, or `--master` with `--worker`s): each worker sends its
  records with its regular report to the master (`report_to_master`, every 3 s, and a
  final one on stop), and the master appends them. Records carry the second their
  requests started in, so late arrival does not move them between chaos windows.

It also writes the user count every interval and the start and stop of the test,
so readers can tell load that never ran from load that failed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import IO, Any

import gevent  # type: ignore[import-untyped]
from locust import events
from locust.env import Environment
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

from .recorder import TimelineRecorder

INTERVAL = 1.0
REPORT_KEY = "harmonyflow_timeline"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_recorder = TimelineRecorder()


def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--timeline-file",
        type=str,
        default="",
        env_var="HF_TIMELINE_FILE",
        include_in_web_ui=False,
        help="append per-second request records as JSON lines to this file (HarmonyFlow)",
    )


def _on_request(
    request_type: str,
    name: str,
    response_time: float | None,
    response_length: int | None = 0,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    started = start_time if start_time else time.time() - (response_time or 0.0) / 1000
    error = None if exception is None else describe(exception)
    _recorder.add(started, request_type, name, response_time, error, int(response_length or 0))


def describe(exception: BaseException) -> str:
    """`Type: message`, without memory addresses: one error table row per kind of error."""
    text = str(exception).strip() or type(exception).__name__
    if not text.startswith(type(exception).__name__):
        text = f"{type(exception).__name__}: {text}"
    return _ADDRESS.sub("", text)


class _Writer:
    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def write(self, records: list[dict[str, Any]]) -> None:
        if records and not self._file.closed:
            self._file.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _listen(environment.events.request, _on_request)
        _listen(environment.events.report_to_master, _report_to_master)
        return
    options = environment.parsed_options
    path = getattr(options, "timeline_file", "") if options is not None else ""
    if not path:
        return  # nothing records: a run without a timeline pays nothing per request
    writer = _Writer(path)
    _listen(environment.events.request, _on_request)

    def users_line() -> dict[str, Any]:
        count = environment.runner.user_count if environment.runner else 0
        return {"kind": "users", "t": time.time(), "users": count}

    def flush_forever() -> None:
        while True:
            gevent.sleep(INTERVAL)
            writer.write([*_recorder.drain(), users_line()])

    def on_test_start(**_: Any) -> None:
        writer.write([{"kind": "run", "event": "start", "t": time.time()}])

    def on_test_stopping(**_: Any) -> None:
        # The load ends when the runner starts stopping its users, not when the last of
        # them (on a worker: its report) has stopped: a master's test_stop fires after its
        # workers reported stopped, seconds later, which stretched an on-cluster hold by
        # 9 s of no load. Requests still finishing are records, which widen the span.
        writer.write([*_recorder.drain(), {"kind": "run", "event": "stop", "t": time.time()}])

    def on_test_stop(**_: Any) -> None:
        writer.write(_recorder.drain())

    def on_worker_report(client_id: str, data: dict[str, Any]) -> None:
        writer.write(list(data.get(REPORT_KEY) or []))

    def on_quitting(**_: Any) -> None:
        writer.write(_recorder.drain())
        writer.close()

    _listen(environment.events.test_start, on_test_start)
    _listen(environment.events.test_stopping, on_test_stopping)
    _listen(environment.events.test_stop, on_test_stop)
    _listen(environment.events.quitting, on_quitting)
    if isinstance(runner, MasterRunner):
        _listen(environment.events.worker_report, on_worker_report)
    gevent.spawn(flush_forever)


def _listen(hook: EventHook, listener: Callable[..., None]) -> None:
    hook.add_listener(listener)  # type: ignore[no-untyped-call]


def _report_to_master(client_id: str, data: dict[str, Any]) -> None:
    records = _recorder.drain()
    if records:
        data[REPORT_KEY] = records


_listen(events.init_command_line_parser, _add_arguments)
_listen(events.init, _on_init)
