"""Control: fault windows in the load timeline, and a safeguard on the fault's error budget.

Every action of the method (except the load's own) opens a fault window that lasts
until the next action or until the load is judged, so the probes that wait for
recovery count as the fault's aftermath and the load's errors are judged in the
window they happened in. During the
method a safeguard reads the load's timeline every `interval` seconds; once the
fault window's error ratio exceeds `max_error_ratio` (with at least `min_requests`
requests in it) it stops the run the way SIGUSR1 does: the method ends and the
rollbacks run. The journal records what triggered it. Without `max_error_ratio` the
safeguard is the load profile's own fault-window budget (`budget_breach`), so a
profile that allows no failure during the fault stops the run at the first one.

    controls:
      - name: load
        provider:
          type: python
          module: resilience.chaos.controls.fault_windows
          arguments: {max_error_ratio: 0.2, min_requests: 20}
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from resilience.chaos import experiment_load
from resilience.chaos.controls import stopping
from resilience.load.runner import LoadRun
from resilience.slo.objectives import Slo, SloKind, Window, WindowStats, evaluate_one, select

log = logging.getLogger("chaostoolkit")
LOAD_ACTIONS = {"start_load", "stop_load", "load_slos_met"}
HOLDS = {"hold"}  # keeps the open fault window open


class _State:
    in_rollbacks = False
    open_fault: str | None = None
    stop = threading.Event()
    watcher: threading.Thread | None = None
    triggered: str | None = None


def fault_error_ratio(run: LoadRun) -> tuple[float, int]:
    """(failed / requests, requests) in the fault window so far; (0, 0) before any fault."""
    stats = run.result().windows().get(Window.FAULT)
    if stats is None:
        return 0.0, 0
    requests = sum(e.requests for key, e in stats.endpoints.items() if key[0] != "LEDGER")
    failed = sum(e.failed for key, e in stats.endpoints.items() if key[0] != "LEDGER")
    return (failed / requests if requests else 0.0), requests


def budget_breach(slos: Sequence[Slo], fault: WindowStats | None, min_requests: int) -> str | None:
    """The first fault-window budget of `slos` (an error ratio or a count of failures)
    that the fault window so far exceeds, as its verdict line; None while all hold. A
    ratio is judged from `min_requests` requests on, a count at once.

    >>> from resilience.slo.objectives import EndpointStats, RequestSelector
    >>> budget = Slo("none-fail", SloKind.FAILURES, 0.0, Window.FAULT)
    >>> budget_breach([budget], WindowStats(3.0, {("GET", "/s"): EndpointStats(9, 1)}), 40)
    'FAIL none-fail: failures in window fault = 1, limit <= 0'
    """
    if fault is None:
        return None
    for slo in slos:
        if slo.window is not Window.FAULT or slo.kind not in (SloKind.ERROR_RATE, SloKind.FAILURES):
            continue
        if slo.kind is SloKind.ERROR_RATE and select(fault, slo.requests).requests < min_requests:
            continue
        verdict = evaluate_one(slo, fault)
        if not verdict.passed:
            return verdict.line()
    return None


def _is_fault(activity: dict[str, Any]) -> bool:
    func = (activity.get("provider") or {}).get("func")
    return activity.get("type") == "action" and func not in LOAD_ACTIONS and not _State.in_rollbacks


def _judges_load(activity: dict[str, Any]) -> bool:
    return (activity.get("provider") or {}).get("func") in LOAD_ACTIONS - {"start_load"}


def before_activity_control(context: dict[str, Any], **kwargs: Any) -> None:
    """A fault window runs from an action's start until the next action, or until the
    load is judged: the probes after an action (waiting for recovery) and the holds
    are its aftermath."""
    if _State.in_rollbacks or (context.get("provider") or {}).get("func") in HOLDS:
        return
    if (_is_fault(context) or _judges_load(context)) and _State.open_fault is not None:
        experiment_load.mark("end", _State.open_fault)
        _State.open_fault = None
    if _is_fault(context):
        _State.open_fault = str(context.get("name"))
        experiment_load.mark("start", _State.open_fault)


def before_method_control(
    context: dict[str, Any],
    max_error_ratio: float | None = None,
    min_requests: int = 20,
    interval: float = 2.0,
    **kwargs: Any,
) -> None:
    _State.stop.clear()
    _State.triggered = None
    stopping.arm()

    def watch() -> None:
        while not _State.stop.wait(float(interval)):
            current = experiment_load.active()
            if current is None or current.result is not None:
                continue
            reason = _breach(current, max_error_ratio, int(min_requests))
            if reason is not None:
                if stopping.request("safeguard", reason):
                    _State.triggered = reason
                return

    _State.watcher = threading.Thread(target=watch, name="load-safeguard", daemon=True)
    _State.watcher.start()


def _breach(
    current: experiment_load.ActiveLoad, max_error_ratio: float | None, min_requests: int
) -> str | None:
    if max_error_ratio is None:
        fault = current.run.result().windows().get(Window.FAULT)
        return budget_breach(current.profile.slos, fault, min_requests)
    ratio, requests = fault_error_ratio(current.run)
    if requests >= min_requests and ratio > float(max_error_ratio):
        return (
            f"fault-window error ratio {ratio:.3f} over {requests} requests"
            f" exceeds the budget {float(max_error_ratio):.3f}"
        )
    return None


def after_method_control(context: dict[str, Any], **kwargs: Any) -> None:
    _State.stop.set()
    stopping.disarm()
    if _State.watcher is not None:
        _State.watcher.join(10)


def before_rollback_control(context: dict[str, Any], **kwargs: Any) -> None:
    _State.stop.set()
    stopping.disarm()
    if _State.open_fault is not None:
        experiment_load.mark("end", _State.open_fault)
        _State.open_fault = None
    _State.in_rollbacks = True


def after_experiment_control(context: dict[str, Any], state: dict[str, Any], **kwargs: Any) -> None:
    """Stop any load still running; record the safeguard's verdict in the journal."""
    _State.stop.set()
    experiment_load.stop_all()
    if _State.triggered is not None:
        state["safeguard"] = {"triggered_by": _State.triggered}
