"""Control: the dead-man switch. A fault is not left running while the runner is blind.

A fault injected by an experiment is undone by its rollbacks, which the runner plays
only when it can talk to what it broke. If the runner loses sight of the Kubernetes
API server (a partition, an API outage, a laptop's VPN dropping), the method would
go on holding the fault without anyone watching the hypothesis. So during the method
a thread probes every target the experiment depends on, every `interval` seconds
with a `probe_timeout`:

- the Kubernetes API (`GET /version`), always;
- the AWS endpoint when the experiment acts on AWS (`$AWS_ENDPOINT_URL`, the sandbox's;
  else `https://sts.<region>.amazonaws.com/`);
- Prometheus when a stop condition or a probe reads it (and it is configured).

Any HTTP answer counts as sight (even 401 or 404: the server is there). When one
target has not answered for longer than `seconds`, the switch stops the method the
way SIGUSR1 does (`stopping`); before the rollbacks run it waits, up to
`recovery_wait` seconds, for the lost targets to answer again, so the rollbacks
meet a server that can take them (past that bound they run anyway, and
`resilience recover` replays what they could not undo). The journal's `dead_man`
says which target was lost, for how long, and when it came back; the verdict
names it.

`resilience chaos run` adds this control to every experiment (`--dead-man-seconds`,
default 30; 0 turns it off). With the stock `chaos run`, declare it:

    controls:
      - name: dead-man
        provider:
          type: python
          module: resilience.chaos.controls.dead_man
          arguments: {seconds: 30}
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.chaos.controls import stopping

log = logging.getLogger("chaostoolkit")
DEFAULT_SECONDS = 30.0
DEFAULT_INTERVAL = 1.0
DEFAULT_PROBE_TIMEOUT = 2.0
DEFAULT_RECOVERY_WAIT = 300.0
MODULE = "resilience.chaos.controls.dead_man"
# activity modules that call AWS (boto3 / chaosaws)
AWS_MODULES = (
    "resilience.chaos.zones",
    "resilience.chaos.database",
    "resilience.chaos.brokers",
    "chaosaws",
)
PROMETHEUS_MODULES = ("resilience.chaos.prometheus", "resilience.chaos.controls.stop_conditions")
KUBE = "Kubernetes API"
AWS = "AWS endpoint"
PROMETHEUS = "Prometheus"


@dataclass(frozen=True)
class Watched:
    """One thing the run must keep in sight: its name and its URL (kube: the context's)."""

    name: str
    url: str


@dataclass(frozen=True)
class Lost:
    """Why the switch fired: which target, silent for how long (seconds)."""

    target: str
    silent_seconds: float

    def describe(self, bound: float) -> str:
        return (
            f"lost sight of the {self.target} for {self.silent_seconds:.1f} s (bound {bound:g} s)"
        )


# ---- pure decisions ----


def silent_for(answers: Sequence[float], started: float, now: float) -> float:
    """Seconds since the target last answered (`answers`: when it did), or since the watch
    started when it never has.

    >>> silent_for([1.0, 4.0], started=0.0, now=10.0)
    6.0
    >>> silent_for([], started=2.0, now=10.0)
    8.0
    """
    last = max((t for t in answers if t <= now), default=started)
    return max(0.0, now - max(last, started))


def fires(
    answers: Mapping[str, Sequence[float]], started: float, now: float, bound: float
) -> Lost | None:
    """The first target (in order) silent for longer than `bound`, or None.

    >>> fires({"Kubernetes API": [1.0]}, started=0.0, now=5.0, bound=3.0)
    Lost(target='Kubernetes API', silent_seconds=4.0)
    >>> fires({"Kubernetes API": [4.0]}, started=0.0, now=5.0, bound=3.0) is None
    True
    """
    for target, times in answers.items():
        silent = silent_for(times, started, now)
        if silent > bound:
            return Lost(target, silent)
    return None


def uses_aws(experiment: Mapping[str, Any]) -> bool:
    """Whether any activity of the experiment (method, rollbacks, hypothesis) calls AWS."""
    return any(_module(a).startswith(AWS_MODULES) for a in _activities(experiment))


def uses_prometheus(experiment: Mapping[str, Any]) -> bool:
    """Whether a probe or a control of the experiment reads Prometheus."""
    modules = [_module(a) for a in _activities(experiment)]
    modules += [_module(c) for c in experiment.get("controls") or []]
    return any(m.startswith(PROMETHEUS_MODULES) for m in modules)


def watched(
    experiment: Mapping[str, Any],
    configuration: Mapping[str, Any],
    env: Mapping[str, str],
    kube_url: str,
) -> list[Watched]:
    """What the switch keeps in sight for this experiment (see the module docstring).

    >>> [w.name for w in watched({"method": [{"provider": {"module": "resilience.chaos.zones"}}]},
    ...                          {}, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5"}, "https://k")]
    ['Kubernetes API', 'AWS endpoint']
    """
    targets = [Watched(KUBE, kube_url)]
    if uses_aws(experiment):
        region = (
            configuration.get("aws_region")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or "us-west-2"
        )
        endpoint = env.get("AWS_ENDPOINT_URL") or f"https://sts.{region}.amazonaws.com/"
        targets.append(Watched(AWS, endpoint))
    prometheus = configuration.get("prometheus_url") or env.get("PROMETHEUS_URL")
    if uses_prometheus(experiment) and prometheus:
        targets.append(Watched(PROMETHEUS, str(prometheus).rstrip("/") + "/-/healthy"))
    return targets


def _activities(experiment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    return [
        *(hypothesis.get("probes") or []),
        *(experiment.get("method") or []),
        *(experiment.get("rollbacks") or []),
    ]


def _module(activity: Mapping[str, Any]) -> str:
    provider = activity.get("provider") if isinstance(activity, Mapping) else None
    return str((provider or {}).get("module") or "")


# ---- probing (thin) ----


def http_answers(url: str, timeout: float) -> bool:
    """Any HTTP answer within `timeout` (an error status included): the server is there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def kube_prober(timeout: float) -> tuple[str, Callable[[], bool]]:
    """(the API server's URL, a probe of its /version): any answer, even 401, is sight."""
    from kubernetes import client  # noqa: PLC0415 - heavy
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    from resilience.chaos.kube import api_client  # noqa: PLC0415

    base = api_client()
    configuration = base.configuration
    configuration.retries = 0  # one attempt per probe: the bound is the probe's timeout
    api = client.ApiClient(configuration)

    def probe() -> bool:
        try:
            client.VersionApi(api).get_code(_request_timeout=(timeout, timeout))
        except ApiException:
            return True
        except Exception:  # noqa: BLE001 - urllib3, OSError, protocol errors: no sight
            return False
        return True

    return str(configuration.host), probe


# ---- the control ----


class _State:
    stop = threading.Event()
    watcher: threading.Thread | None = None
    probes: dict[str, Callable[[], bool]] = {}  # noqa: RUF012 - one run per process
    lost: Lost | None = None
    bound = DEFAULT_SECONDS
    recovered_after: float | None = None
    recovery: str | None = None


def before_method_control(
    context: dict[str, Any],
    seconds: float = DEFAULT_SECONDS,
    interval: float = DEFAULT_INTERVAL,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    configuration: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Start watching the targets; the switch fires after `seconds` without an answer."""
    _State.stop.clear()
    _State.lost, _State.recovered_after, _State.recovery = None, None, None
    _State.bound = float(seconds)
    stopping.arm()
    timeout = min(float(probe_timeout), max(0.2, float(seconds) / 2))
    kube_url, kube_probe = kube_prober(timeout)
    targets = watched(context, configuration or {}, os.environ, kube_url)
    _State.probes = {KUBE: kube_probe}
    for target in targets[1:]:
        _State.probes[target.name] = functools.partial(http_answers, target.url, timeout)
    log.info(
        "dead-man switch: %s kept in sight (bound %g s)",
        ", ".join(t.name for t in targets),
        float(seconds),
    )
    started = time.monotonic()
    answers: dict[str, list[float]] = {name: [started] for name in _State.probes}

    def watch() -> None:
        while not _State.stop.wait(float(interval)):
            for name, probe in _State.probes.items():
                if probe():
                    answers[name] = [time.monotonic()]
            lost = fires(answers, started, time.monotonic(), float(seconds))
            if lost is not None:
                if stopping.request("dead-man switch", lost.describe(float(seconds))):
                    _State.lost = lost
                return

    _State.watcher = threading.Thread(target=watch, name="dead-man-switch", daemon=True)
    _State.watcher.start()


def _stop_watching() -> None:
    _State.stop.set()
    stopping.disarm()
    if _State.watcher is not None:
        _State.watcher.join(DEFAULT_PROBE_TIMEOUT * 4 + 1)


def after_method_control(context: dict[str, Any], **kwargs: Any) -> None:
    _stop_watching()


def before_rollback_control(
    context: dict[str, Any], recovery_wait: float = DEFAULT_RECOVERY_WAIT, **kwargs: Any
) -> None:
    """After the switch fired: wait (bounded) until every target answers again, so the
    rollbacks meet a server that can take them."""
    _stop_watching()
    if _State.lost is None:
        return
    began = time.monotonic()
    deadline = began + float(recovery_wait)
    log.warning(
        "dead-man switch: waiting up to %g s for the targets before the rollbacks",
        float(recovery_wait),
    )
    while time.monotonic() < deadline:
        if all(probe() for probe in _State.probes.values()):
            _State.recovered_after = round(time.monotonic() - began, 3)
            _State.recovery = "back"
            log.info("dead-man switch: targets answer again after %.1f s", _State.recovered_after)
            return
        time.sleep(1.0)
    _State.recovery = "not back"
    log.error(
        "dead-man switch: targets still silent after %g s; rolling back anyway"
        " (resilience recover replays what the rollbacks could not undo)",
        float(recovery_wait),
    )


def after_experiment_control(context: dict[str, Any], state: dict[str, Any], **kwargs: Any) -> None:
    """Record in the journal why the switch stopped the run, and whether the targets came back."""
    _stop_watching()
    if _State.lost is not None:
        state["dead_man"] = {
            "triggered_by": _State.lost.describe(_State.bound),
            "target": _State.lost.target,
            "bound_seconds": _State.bound,
            "targets_back": _State.recovery == "back",
            "waited_before_rollbacks_seconds": _State.recovered_after,
        }
