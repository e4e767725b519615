"""Probes that ask Prometheus: is a PromQL expression within bounds, is an alert firing.

The service's own metrics say what the users feel (error ratio, p99 latency) long
before the Kubernetes objects do, and the alert rules in deploy/monitoring/rules/
say what the on-call would have been paged for. These probes put both into a
steady-state hypothesis:

    steady-state-hypothesis:
      title: the service is healthy by its own metrics
      probes:
        - type: probe
          name: error-ratio-below-1-percent
          tolerance: true
          provider:
            type: python
            module: resilience.chaos.prometheus
            func: query_within
            arguments:
              query: sum(rate(http_requests_total{code=~"5.."}[1m]))
                     / sum(rate(http_requests_total[1m]))
              maximum: 0.01
              empty: pass          # no traffic at all is not an error
        - type: probe
          name: no-alert-firing
          tolerance: []
          provider: {type: python, module: resilience.chaos.prometheus, func: alerts_firing}

Why `True`/`False` with `tolerance: true` and not a dict with a jsonpath
tolerance: the jsonpath tolerance needs the `chaostoolkit-lib[jsonpath]` extra
(not installed), and a vector answer has any number of samples, which a range
tolerance cannot hold. So the bound is checked here, for every sample, and the
observed values are logged (a warning names each sample out of bounds, with its
labels). For a single number recorded in the journal, `query_value` returns it
for a `[low, high]` tolerance.

Where Prometheus is: the `url` argument, else the configuration key
`prometheus_url`, else the environment variable `PROMETHEUS_URL` (the sandbox
exports it; on staging the SRE sets it). Every request is bounded by `timeout`
seconds, also passed to Prometheus as the query's own evaluation timeout.
Prometheus unreachable, a query it rejects (its parse error quoted), or an answer
that is not Prometheus's JSON: the probe fails (`ActivityFailed`) saying which.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

__all__ = ["alert_not_firing", "alerts_firing", "query_value", "query_within"]

URL_ENV = "PROMETHEUS_URL"
URL_KEY = "prometheus_url"  # in the experiment's configuration
EMPTY_CHOICES = ("fail", "pass")
DEFAULT_TIMEOUT = 10.0
logger = logging.getLogger("chaostoolkit")


class PrometheusError(ActivityFailed):  # type: ignore[misc]  # chaoslib is untyped
    """Prometheus could not answer the question (unreachable, rejected it, spoke no JSON)."""


@dataclass(frozen=True)
class Sample:
    """One sample of an instant query's answer: its labels and its value."""

    labels: tuple[tuple[str, str], ...]
    value: float

    def describe(self) -> str:
        """`0.42 {code="500",pod="a"}`, or `0.42` for a scalar or an unlabelled sample."""
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.value:g} {{{inner}}}" if inner else f"{self.value:g}"


@dataclass(frozen=True)
class BoundCheck:
    """The verdict on an answer: `passed`, and a line saying what was seen."""

    passed: bool
    observed: str


# ---- pure decisions ----


def check_bounds(
    samples: Sequence[Sample],
    minimum: float | None = None,
    maximum: float | None = None,
    empty: str = "fail",
) -> BoundCheck:
    """Every sample within [minimum, maximum] (both inclusive, either may be None).

    NaN is never within bounds (0/0: a ratio over no traffic); pass `empty="pass"`
    and write the query so that no traffic gives no sample, if that is healthy.
    An answer with no sample passes only with `empty="pass"`.

        >>> check_bounds([Sample((), 0.2)], maximum=0.1)
        BoundCheck(passed=False, observed='1 of 1 sample(s) out of bounds (<= 0.1): 0.2')
        >>> check_bounds([], empty="pass").passed
        True
    """
    bounds = _bounds_text(minimum, maximum)
    if not samples:
        return BoundCheck(empty == "pass", f"no sample (empty={empty})")
    outside = [s for s in samples if not within(s.value, minimum, maximum)]
    if outside:
        shown = "; ".join(s.describe() for s in outside[:10])
        more = f"; and {len(outside) - 10} more" if len(outside) > 10 else ""
        return BoundCheck(
            False,
            f"{len(outside)} of {len(samples)} sample(s) out of bounds ({bounds}): {shown}{more}",
        )
    shown = "; ".join(s.describe() for s in samples[:10])
    return BoundCheck(True, f"{len(samples)} sample(s) within bounds ({bounds}): {shown}")


def within(value: float, minimum: float | None, maximum: float | None) -> bool:
    """`minimum <= value <= maximum`, a missing bound being no bound; NaN never is."""
    if math.isnan(value):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _bounds_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{minimum:g} <= value <= {maximum:g}"
    if minimum is not None:
        return f">= {minimum:g}"
    if maximum is not None:
        return f"<= {maximum:g}"
    return "no bound"


def samples_of(data: Mapping[str, Any]) -> list[Sample]:
    """The samples of `data` (the `data` of an instant query's answer): scalar or vector.

    >>> samples_of({"resultType": "scalar", "result": [1.7e9, "0.5"]})
    [Sample(labels=(), value=0.5)]
    >>> samples_of({"resultType": "vector", "result": [
    ...     {"metric": {"pod": "a"}, "value": [1.7e9, "NaN"]}]})[0].describe()
    'nan {pod="a"}'
    """
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return [Sample((), float(result[1]))]
    if kind == "vector" and isinstance(result, list):
        return [
            Sample(tuple(sorted((entry.get("metric") or {}).items())), float(entry["value"][1]))
            for entry in result
        ]
    raise ValueError(
        f"a {kind} result is not a number or an instant vector"
        + (" (a range selector needs a function, e.g. rate(x[1m]))" if kind == "matrix" else "")
    )


def firing_alerts(
    alerts: Sequence[Mapping[str, Any]],
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Mapping[str, Any]]:
    """The alerts of /api/v1/alerts that are firing (not pending), matching `name` and
    every label of `labels`.

        >>> firing_alerts([{"labels": {"alertname": "A"}, "state": "firing"},
        ...                {"labels": {"alertname": "B"}, "state": "pending"}])
        [{'labels': {'alertname': 'A'}, 'state': 'firing'}]
    """
    wanted = dict(labels or {})
    if name is not None:
        wanted["alertname"] = name
    return [
        alert
        for alert in alerts
        if alert.get("state") == "firing"
        and all((alert.get("labels") or {}).get(k) == v for k, v in wanted.items())
    ]


# ---- the probes ----


def query_within(
    query: str,
    maximum: float | None = None,
    minimum: float | None = None,
    empty: str = "fail",
    timeout: float = DEFAULT_TIMEOUT,
    url: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> bool:
    """True when every sample of the PromQL instant `query` is within [minimum, maximum].

    Use with `tolerance: true`. Both bounds are inclusive and optional. The answer
    may be a scalar or an instant vector (every series must be within bounds, e.g.
    each pod's p99). NaN is out of bounds. No sample at all is a failure unless
    `empty: pass` (a selector that matches nothing is more often a typo than health).
    The observed values are logged; those out of bounds as a warning with their labels.
    Fails (ActivityFailed) when Prometheus is unreachable within `timeout` seconds,
    rejects the query (its parse error quoted), or does not answer as Prometheus.
    """
    if empty not in EMPTY_CHOICES:
        raise ActivityFailed(f"query_within: empty: expected 'fail' or 'pass', got {empty!r}")
    if minimum is not None and maximum is not None and float(minimum) > float(maximum):
        raise ActivityFailed(
            f"query_within: minimum {minimum} is above maximum {maximum}: nothing can pass"
        )
    samples = instant_query(query, timeout, prometheus_url(url, configuration))
    verdict = check_bounds(
        samples,
        None if minimum is None else float(minimum),
        None if maximum is None else float(maximum),
        empty,
    )
    (logger.info if verdict.passed else logger.warning)(f"query {query!r}: {verdict.observed}")
    return verdict.passed


def query_value(
    query: str,
    timeout: float = DEFAULT_TIMEOUT,
    url: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> float:
    """The single number the PromQL instant `query` answers (scalar or one-sample vector).

    Use with a range tolerance (`tolerance: [0, 0.01]`) to keep the observed value in
    the journal. Fails when the answer has no sample or several (aggregate with
    `sum`/`max` first), or when Prometheus cannot answer (see `query_within`).
    """
    samples = instant_query(query, timeout, prometheus_url(url, configuration))
    if len(samples) != 1:
        shown = "; ".join(s.describe() for s in samples[:5])
        raise ActivityFailed(
            f"query {query!r} answered {len(samples)} samples, expected exactly one"
            + (f": {shown}" if shown else "")
        )
    logger.info(f"query {query!r}: {samples[0].describe()}")
    return samples[0].value


def alerts_firing(
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    url: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> list[str]:
    """Names of the alerts firing now (pending ones are not), sorted, each once.

    Narrow with `name` and/or `labels` (e.g. `{severity: critical}`); a healthy
    system answers `[]`, so `tolerance: []`. Fails when Prometheus cannot answer.
    """
    alerts = firing_alerts(_alerts(timeout, prometheus_url(url, configuration)), name, labels)
    for alert in alerts:
        logger.warning(f"alert firing: {_describe_alert(alert)}")
    return sorted({str((a.get("labels") or {}).get("alertname")) for a in alerts})


def alert_not_firing(
    name: str,
    timeout: float = DEFAULT_TIMEOUT,
    url: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> bool:
    """True when the alert `name` is not firing (pending is not firing yet).

    Use with `tolerance: true`; when it fires, its labels, value and since when
    are logged. Fails when Prometheus cannot answer.
    """
    firing = firing_alerts(_alerts(timeout, prometheus_url(url, configuration)), name)
    for alert in firing:
        logger.warning(f"alert firing: {_describe_alert(alert)}")
    return not firing


# ---- talking to Prometheus ----


def prometheus_url(url: str | None = None, configuration: Mapping[str, Any] | None = None) -> str:
    """The base URL: `url`, else configuration `prometheus_url`, else $PROMETHEUS_URL."""
    chosen = url or (configuration or {}).get(URL_KEY) or os.environ.get(URL_ENV)
    if not chosen:
        raise ActivityFailed(
            f"where is Prometheus? set the environment variable {URL_ENV} "
            f"(e.g. http://127.0.0.1:9090), or give `url` or configuration {URL_KEY}"
        )
    parsed = urllib.parse.urlsplit(str(chosen))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ActivityFailed(f"Prometheus URL {chosen!r} is not an http(s) URL")
    return str(chosen).rstrip("/")


def instant_query(query: str, timeout: float, url: str) -> list[Sample]:
    """The samples of an instant query at the current time (GET /api/v1/query)."""
    data = api_get(url, "/api/v1/query", {"query": query}, timeout, what=f"query {query!r}")
    try:
        return samples_of(data)
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise PrometheusError(f"query {query!r}: {error}") from None


def query_range(
    query: str, start: float, end: float, step: float, timeout: float, url: str
) -> list[dict[str, Any]]:
    """The series of a range query (GET /api/v1/query_range): [{metric, values}]."""
    params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    data = api_get(url, "/api/v1/query_range", params, timeout, what=f"query {query!r}")
    if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise PrometheusError(f"query {query!r}: expected a matrix, got {data.get('resultType')}")
    return list(data["result"])


def _alerts(timeout: float, url: str) -> list[Mapping[str, Any]]:
    data = api_get(url, "/api/v1/alerts", {}, timeout, what="the alerts")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise PrometheusError(f"Prometheus at {url}: /api/v1/alerts has no list of alerts")
    return alerts


def api_get(
    url: str, path: str, params: Mapping[str, str], timeout: float, what: str
) -> dict[str, Any]:
    """The `data` of a successful Prometheus API answer; PrometheusError otherwise.

    `timeout` bounds the connection and each read; Prometheus gets it too, so a slow
    query is cut by the server (an error answer) rather than left running.
    """
    seconds = float(timeout)
    if not seconds > 0:
        raise ActivityFailed(f"timeout: expected a positive number of seconds, got {timeout!r}")
    query = urllib.parse.urlencode({**params, "timeout": f"{seconds:g}s"} if params else {})
    url, headers = _credentials_apart(url)
    request = urllib.request.Request(
        f"{url}{path}" + (f"?{query}" if query else ""), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=seconds) as answer:
            body = answer.read()
    except urllib.error.HTTPError as error:
        raise PrometheusError(_http_error(url, what, error)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PrometheusError(f"Prometheus at {url} is unreachable: {reason}") from None
    payload = _json(body, url, path)
    if payload.get("status") != "success" or not isinstance(payload.get("data"), dict):
        raise PrometheusError(
            f"Prometheus at {url} did not answer {what} with success: "
            f"{payload.get('errorType')}: {payload.get('error')}"
        )
    for warning in payload.get("warnings") or []:
        logger.warning(f"Prometheus warns about {what}: {warning}")
    data: dict[str, Any] = payload["data"]
    return data


def _credentials_apart(url: str) -> tuple[str, dict[str, str]]:
    """`http://user:pw@host` -> (`http://host`, Basic auth header): urllib does not take
    credentials from the URL, and no message may show them."""
    headers = {"Accept": "application/json"}
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, headers
    token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")), headers


def _http_error(url: str, what: str, error: urllib.error.HTTPError) -> str:
    try:
        body = error.read()
    except OSError:
        body = b""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("error"):
        # 400 bad_data (a parse error), 422 execution, 503 timeout/canceled
        return f"Prometheus rejected {what}: {payload.get('errorType')}: {payload['error']}"
    text = " ".join(body.decode("utf-8", "replace").split())[:200]
    return f"Prometheus at {url} answered {what} with HTTP {error.code} {error.reason}: {text}"


def _json(body: bytes, url: str, path: str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        text = " ".join(body.decode("utf-8", "replace").split())[:100]
        raise PrometheusError(
            f"Prometheus at {url}: {path} did not answer JSON (is it Prometheus?): {text!r}"
        ) from None
    if not isinstance(payload, dict):
        raise PrometheusError(f"Prometheus at {url}: {path} answered JSON that is not an object")
    return payload


def _describe_alert(alert: Mapping[str, Any]) -> str:
    labels = dict(alert.get("labels") or {})
    name = labels.pop("alertname", "?")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} value {alert.get('value')} since {alert.get('activeAt')}"
