"""Control: stop conditions. Named alerts that end the fault the moment they fire.

AWS FIS stops an experiment when a CloudWatch alarm it names goes into ALARM; this
is the same guard for any experiment of the suite. The alerts named here are the
on-call's own (deploy/monitoring/rules): if one fires during the method, the users
are hurting beyond what the experiment set out to learn, so the fault stops at once
(the method ends the way SIGUSR1 ends it, the rollbacks run) and the journal's
`stop_condition` names the alert; the verdict turns it into a failure that names it.

- **Before the method** (before anything runs, the steady state included), a stop
  condition already firing refuses the run: one line naming it.
- **During the method** the alerts are read every `interval` seconds (Prometheus's
  `/api/v1/alerts`; a pending alert is not firing). A poll that fails is logged and
  skipped: losing sight of Prometheus for longer than its bound is the dead-man
  switch's call (`resilience.chaos.controls.dead_man`), not this control's.
- **Prometheus not configured** (no `prometheus_url` argument, no configuration
  `prometheus_url`, no `$PROMETHEUS_URL`, as on the sandbox without
  `--with monitoring`): said once, as a warning, and the run goes on unguarded by
  alerts. The experiments declare their stop conditions unconditionally, so a run
  on a cluster without monitoring still works; on staging, PROMETHEUS_URL is set.
  Configured but unreachable at the start: the run is refused (a stop condition that
  cannot be read guards nothing).
- **CloudWatch alarms** (`alarms`, on AWS): `cloudwatch.describe_alarms`, an alarm in
  state ALARM is a stop condition met. boto3 honours `$AWS_ENDPOINT_URL` (the
  sandbox's moto endpoint serves CloudWatch, but nothing there sets an alarm's
  state: in practice this is for staging).

    controls:
      - name: stop-conditions
        provider:
          type: python
          module: resilience.chaos.controls.stop_conditions
          arguments:
            alerts: [SessionStateHighErrorRate, SessionStateTooFewReadyPods]
            alarms: []              # CloudWatch alarm names (AWS)
            interval: 5             # seconds between two reads during the method
            # prometheus_url: ...   # else configuration prometheus_url, else $PROMETHEUS_URL

`resilience chaos run --stop-on-alert NAME` adds alerts to any experiment (a game-day
step's `stop_conditions` does the same).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution

from resilience.chaos import prometheus
from resilience.chaos.controls import stopping

log = logging.getLogger("chaostoolkit")
MODULE = "resilience.chaos.controls.stop_conditions"
DEFAULT_INTERVAL = 5.0
DEFAULT_TIMEOUT = 3.0
IN_ALARM = "ALARM"


@dataclass(frozen=True)
class StopConditions:
    """What to watch: Prometheus alert names and CloudWatch alarm names."""

    alerts: tuple[str, ...] = ()
    alarms: tuple[str, ...] = ()
    prometheus_url: str | None = None  # None: Prometheus is not configured
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT


# ---- pure decisions ----


def conditions_from(
    arguments: Mapping[str, Any], configuration: Mapping[str, Any], env: Mapping[str, str]
) -> StopConditions:
    """The control's arguments, checked; the URL from the argument, configuration or env.

    >>> found = conditions_from({"alerts": ["A", "A"]}, {}, {"PROMETHEUS_URL": "http://p:9090/"})
    >>> found.alerts, found.prometheus_url
    (('A',), 'http://p:9090')
    """
    names = {}
    for key in ("alerts", "alarms"):
        raw = arguments.get(key) or []
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            raise ValueError(f"stop conditions: {key}: expected a list of names, got {raw!r}")
        names[key] = tuple(dict.fromkeys(str(n) for n in raw))
    url = (
        arguments.get("prometheus_url")
        or configuration.get(prometheus.URL_KEY)
        or env.get(prometheus.URL_ENV)
    )
    interval = float(arguments.get("interval", DEFAULT_INTERVAL))
    timeout = float(arguments.get("timeout", DEFAULT_TIMEOUT))
    if interval <= 0 or timeout <= 0:
        raise ValueError("stop conditions: interval and timeout must be positive")
    return StopConditions(
        alerts=names["alerts"],
        alarms=names["alarms"],
        prometheus_url=str(url).rstrip("/") if url else None,
        interval=interval,
        timeout=timeout,
    )


def alerts_met(alerts: Sequence[Mapping[str, Any]], wanted: Sequence[str]) -> list[str]:
    """The wanted alert names that are firing (pending is not), in the order wanted.

    >>> alerts_met([{"labels": {"alertname": "B"}, "state": "firing"},
    ...             {"labels": {"alertname": "A"}, "state": "pending"}], ["A", "B"])
    ['B']
    """
    firing = {
        str((a.get("labels") or {}).get("alertname")) for a in prometheus.firing_alerts(alerts)
    }
    return [name for name in wanted if name in firing]


def alarms_met(answer: Mapping[str, Any], wanted: Sequence[str]) -> list[str]:
    """The wanted CloudWatch alarms in state ALARM, from a `describe_alarms` answer.

    >>> alarms_met({"MetricAlarms": [{"AlarmName": "x", "StateValue": "ALARM"},
    ...                              {"AlarmName": "y", "StateValue": "OK"}]}, ["x", "y"])
    ['x']
    """
    alarms = [*(answer.get("MetricAlarms") or []), *(answer.get("CompositeAlarms") or [])]
    in_alarm = {str(a.get("AlarmName")) for a in alarms if a.get("StateValue") == IN_ALARM}
    return [name for name in wanted if name in in_alarm]


def describe_met(alerts: Sequence[str], alarms: Sequence[str]) -> str:
    """`alert SessionStateHighErrorRate firing`, `CloudWatch alarm x in ALARM`, joined.

    >>> describe_met(["A"], ["x"])
    'alert A firing; CloudWatch alarm x in ALARM'
    """
    parts = [f"alert {n} firing" for n in alerts] + [
        f"CloudWatch alarm {n} in ALARM" for n in alarms
    ]
    return "; ".join(parts)


# ---- reading them (thin) ----


def read_met(conditions: StopConditions, prometheus_watched: bool) -> str | None:
    """What is met now (a description), or None; raises ActivityFailed when unreadable."""
    alerts: list[str] = []
    if conditions.alerts and prometheus_watched and conditions.prometheus_url:
        data = prometheus.api_get(
            conditions.prometheus_url, "/api/v1/alerts", {}, conditions.timeout, "the alerts"
        )
        raw = data.get("alerts")
        if not isinstance(raw, list):
            raise prometheus.PrometheusError("/api/v1/alerts has no list of alerts")
        alerts = alerts_met(raw, conditions.alerts)
    alarms: list[str] = []
    if conditions.alarms:
        alarms = alarms_met(_describe_alarms(conditions), conditions.alarms)
    return describe_met(alerts, alarms) if alerts or alarms else None


def _describe_alarms(conditions: StopConditions) -> Mapping[str, Any]:
    import boto3  # noqa: PLC0415 - only when alarms are named
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    config = Config(
        connect_timeout=conditions.timeout,
        read_timeout=conditions.timeout,
        retries={"max_attempts": 1},
    )
    try:
        answer: Mapping[str, Any] = boto3.client("cloudwatch", config=config).describe_alarms(
            AlarmNames=list(conditions.alarms)
        )
    except (BotoCoreError, ClientError) as error:
        raise ActivityFailed(f"CloudWatch describe_alarms failed: {error}") from None
    return answer


# ---- the control ----


class _State:
    conditions: StopConditions | None = None
    prometheus_watched = False
    refused: str | None = None
    triggered: str | None = None
    stop = threading.Event()
    watcher: threading.Thread | None = None


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **arguments: Any
) -> None:
    """Refuse to start when a stop condition is already met (or cannot be read)."""
    _State.refused, _State.triggered = None, None
    try:
        conditions = conditions_from(arguments, configuration or {}, os.environ)
    except ValueError as error:
        _State.refused = str(error)
        raise InterruptExecution(str(error)) from None
    _State.conditions = conditions
    _State.prometheus_watched = bool(conditions.alerts) and conditions.prometheus_url is not None
    if conditions.alerts and not _State.prometheus_watched:
        log.warning(
            "stop conditions: Prometheus is not configured (no %s): alerts %s are not watched",
            prometheus.URL_ENV,
            ", ".join(conditions.alerts),
        )
    try:
        met = read_met(conditions, _State.prometheus_watched)
    except ActivityFailed as error:
        _State.refused = f"stop conditions cannot be read: {error}"
    else:
        if met is not None:
            _State.refused = f"stop condition already met before the method: {met}"
    if _State.refused is not None:
        raise InterruptExecution(f"{_State.refused}: refusing to start")


def before_method_control(context: dict[str, Any], **kwargs: Any) -> None:
    """Watch the stop conditions while the method runs; the first one met stops it."""
    conditions = _State.conditions
    _State.stop.clear()
    stopping.arm()
    if conditions is None or not (_State.prometheus_watched or conditions.alarms):
        return
    unreadable = threading.Event()

    def watch() -> None:
        while not _State.stop.wait(conditions.interval):
            try:
                met = read_met(conditions, _State.prometheus_watched)
            except ActivityFailed as error:
                if not unreadable.is_set():
                    log.warning("stop conditions: cannot read them now: %s", error)
                unreadable.set()
                continue
            unreadable.clear()
            if met is not None:
                if stopping.request("stop condition", met):
                    _State.triggered = met
                return

    _State.watcher = threading.Thread(target=watch, name="stop-conditions", daemon=True)
    _State.watcher.start()


def _stop_watching() -> None:
    _State.stop.set()
    stopping.disarm()
    if _State.watcher is not None:
        _State.watcher.join(DEFAULT_TIMEOUT * 3 + 1)


def after_method_control(context: dict[str, Any], **kwargs: Any) -> None:
    _stop_watching()


def before_rollback_control(context: dict[str, Any], **kwargs: Any) -> None:
    _stop_watching()


def after_experiment_control(context: dict[str, Any], state: dict[str, Any], **kwargs: Any) -> None:
    """Record in the journal which stop condition refused or stopped the run."""
    _stop_watching()
    conditions = _State.conditions
    if _State.refused is not None:
        state["stop_condition"] = {"refused": _State.refused}
    elif _State.triggered is not None:
        state["stop_condition"] = {"triggered_by": _State.triggered}
    elif conditions is not None and conditions.alerts and not _State.prometheus_watched:
        state["stop_condition"] = {
            "unwatched": f"Prometheus not configured: {', '.join(conditions.alerts)} not watched"
        }
