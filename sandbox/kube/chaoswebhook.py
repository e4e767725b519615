"""Chaos Mesh's admission webhooks for NetworkChaos and DNSChaos, as the API server runs them.

Chaos Mesh installs a mutating (`m<kind>.kb.io`) and a validating (`v<kind>.kb.io`)
webhook per kind (helm/chaos-mesh/templates/*-admission-webhooks.yaml), served by
`api/genericwebhook`, which walks the Go struct and calls each field's `Default` /
`Validate` (chaos-mesh 608b61e7, api/v1alpha1/common_webhook.go,
networkchaos_webhook.go, zz_generated.chaosmesh.go). What they do here:

- defaults: `selector.namespaces` (and the target's) to the object's namespace,
  `direction: to`, `delay.jitter: 0ms`, every `correlation: "0"`, `device` cut at `@`;
- refusals: `mode` fixed needs an integer `value` > 0, fixed-percent and
  random-max-percent an integer in (0, 100]; `duration`, `latency` and `jitter` Go
  durations; percentages and correlations floats; bandwidth and rate units;
  `from`/`both` netem needs a `target` and no `externalTargets`; and an update may not
  change `spec` ("Cannot update chaos spec").

A refusal reaches the client as kube-apiserver forwards a webhook denial from
controller-runtime: 403 Forbidden, `admission webhook "vnetworkchaos.kb.io" denied the
request: <errors>`, no causes. Field paths are Go field names, as genericwebhook
builds them (`Spec.PodSelector.value`). Schema violations never get here: the CRD's
structural schema answers those first with a 422 (structural.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sandbox.kube.errors import ApiError
from sandbox.kube.goduration import DurationError, parse_go_duration

KubeObject = dict[str, Any]
NETWORKCHAOS_KEY = "chaos-mesh.org/networkchaos"
DNSCHAOS_KEY = "chaos-mesh.org/dnschaos"
_RATE_UNITS = ("kbit", "mbit", "gbit", "tbit", "tbps", "gbps", "mbps", "kbps", "bps", "bit")
_NETEM_SPECS = ("delay", "loss", "duplicate", "corrupt")
_GO_FLOAT = re.compile(
    r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)", re.I
)


def default(key: str, obj: KubeObject) -> None:
    """The mutating webhook, in place (`gw.Default`)."""
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    spec = obj.setdefault("spec", {})
    _default_namespaces(spec, namespace)
    if key != NETWORKCHAOS_KEY:
        return
    if isinstance(spec.get("target"), dict):
        _default_namespaces(spec["target"], namespace)
    if not spec.get("direction"):
        spec["direction"] = "to"
    device = spec.get("device")
    if isinstance(device, str) and "@" in device:
        spec["device"] = device.split("@", 1)[0]
    for name in (*_NETEM_SPECS, "reorder"):
        part = spec.get(name) if name != "reorder" else (spec.get("delay") or {}).get("reorder")
        if isinstance(part, dict) and not part.get("correlation"):
            part["correlation"] = "0"
    if isinstance(spec.get("delay"), dict) and not spec["delay"].get("jitter"):
        spec["delay"]["jitter"] = "0ms"


def _default_namespaces(selector_holder: KubeObject, namespace: str) -> None:
    selector = selector_holder.get("selector")
    if isinstance(selector, dict) and not selector.get("namespaces"):
        selector["namespaces"] = [namespace]


def denials(key: str, new: KubeObject, old: KubeObject | None) -> list[str]:
    """The validating webhook's errors, in genericwebhook's order; empty: admitted.

    >>> spec = {"selector": {}, "mode": "fixed", "value": "0", "action": "delay",
    ...         "direction": "to", "delay": {"latency": "1s"}}
    >>> denials(NETWORKCHAOS_KEY, {"spec": spec}, None)
    ['Spec.PodSelector.value: Invalid value: "0": value must be greater than 0 with mode:fixed']
    """
    spec = new.get("spec") or {}
    if old is not None and (old.get("spec") or {}) != spec:
        return ["Cannot update chaos spec"]
    checks = _NETWORKCHAOS_CHECKS if key == NETWORKCHAOS_KEY else _DNSCHAOS_CHECKS
    errors: list[str] = []
    for check in checks:
        for error in check(spec):
            if error not in errors:  # field.ErrorList.ToAggregate drops duplicates
                errors.append(error)
    return errors


def denied(key: str, kind: str, errors: list[str]) -> ApiError:
    """The Status the API server answers for a denial of `v<plural>.kb.io`."""
    aggregate = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    plural = key.split("/", 1)[1]
    return ApiError(
        403,
        "Forbidden",
        f'admission webhook "v{plural}.kb.io" denied the request: {aggregate}',
        kind=kind,
    )


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {json.dumps(value)}: {detail}"


def _selector_errors(path: str, holder: Any) -> list[str]:
    """`PodSelector.Validate`: the mode's value."""
    if not isinstance(holder, dict):
        return []
    mode, value = holder.get("mode"), holder.get("value", "")
    where = f"{path}.value"
    if mode not in ("fixed", "fixed-percent", "random-max-percent"):
        return []
    number = _go_atoi(value)
    if number is None:
        detail = f"strconv.Atoi: parsing {json.dumps(value)}: invalid syntax"
        return [_invalid(where, value, f"parse value field error:{detail}")]
    if mode == "fixed" and number <= 0:
        return [_invalid(where, value, "value must be greater than 0 with mode:fixed")]
    if mode != "fixed" and not 0 < number <= 100:
        return [
            _invalid(
                where, value, f"value of {number} is invalid, Must be (0,100] with mode:{mode}"
            )
        ]
    return []


def _duration_errors(path: str, value: Any, *, allow_empty: bool) -> list[str]:
    if value is None or (allow_empty and value == ""):
        return []
    try:
        parse_go_duration(str(value))
    except DurationError as error:
        return [_invalid(path, value, f"parse duration field error: {error}")]
    return []


def _float_errors(path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not _GO_FLOAT.fullmatch(str(value)):
        detail = f"strconv.ParseFloat: parsing {json.dumps(value)}: invalid syntax"
        return [_invalid(path, value, f"parse correlation field error:{detail}")]
    return []


def _rate_errors(path: str, value: Any) -> list[str]:
    text = str(value if value is not None else "").strip().lower()
    for unit in _RATE_UNITS:
        if text.endswith(unit):
            number = text.removesuffix(unit).strip()
            if not number.isdigit():
                detail = f"strconv.ParseUint: parsing {json.dumps(number)}: invalid syntax"
                return [_invalid(path, value, f"parse rate field error:{detail}")]
            return []
    return [_invalid(path, value, "parse rate field error:invalid unit")]


def _go_atoi(value: Any) -> int | None:
    text = str(value)
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


def _direction_errors(spec: KubeObject) -> list[str]:
    """`NetworkChaosSpec.Validate`: partition aside, `from`/`both` needs targets."""
    if spec.get("action") == "partition":
        return []
    direction = spec.get("direction")
    if direction not in ("from", "both"):
        return []
    errors = []
    if spec.get("externalTargets") is not None:
        errors.append(
            _invalid(
                "Spec.direction",
                direction,
                "external targets cannot be used with `from` and `both` direction in netem "
                "action yet",
            )
        )
    if spec.get("target") is None:
        errors.append(
            _invalid(
                "Spec.direction",
                direction,
                "`from` and `both` direction cannot be used when targets is empty in netem action",
            )
        )
    return errors


def _tc_errors(spec: KubeObject) -> list[str]:
    """The TcParameter fields, level by level as genericwebhook's walk reaches them."""
    base = "Spec.TcParameter"
    errors: list[str] = []
    delay = spec.get("delay")
    if isinstance(delay, dict):
        errors += _duration_errors(f"{base}.Delay.Latency", delay.get("latency"), allow_empty=True)
        errors += _float_errors(f"{base}.Delay.Correlation", delay.get("correlation"))
        errors += _duration_errors(f"{base}.Delay.Jitter", delay.get("jitter"), allow_empty=True)
    for name, field in (("loss", "Loss"), ("duplicate", "Duplicate"), ("corrupt", "Corrupt")):
        part = spec.get(name)
        if isinstance(part, dict):
            errors += _float_errors(f"{base}.{field}.{field}", part.get(name, ""))
            errors += _float_errors(f"{base}.{field}.Correlation", part.get("correlation"))
    if isinstance(spec.get("bandwidth"), dict):
        errors += _rate_errors(f"{base}.Bandwidth.Rate", spec["bandwidth"].get("rate"))
    if isinstance(spec.get("rate"), dict):
        errors += _rate_errors(f"{base}.Rate.Rate", spec["rate"].get("rate"))
    reorder = delay.get("reorder") if isinstance(delay, dict) else None
    if isinstance(reorder, dict):
        errors += _float_errors(f"{base}.Delay.Reorder.Reorder", reorder.get("reorder", ""))
        errors += _float_errors(f"{base}.Delay.Reorder.Correlation", reorder.get("correlation"))
    return errors


_NETWORKCHAOS_CHECKS: tuple[Callable[[KubeObject], list[str]], ...] = (
    _direction_errors,
    lambda spec: _selector_errors("Spec.PodSelector", spec),
    lambda spec: _duration_errors("Spec.Duration", spec.get("duration"), allow_empty=True),
    lambda spec: _selector_errors("Spec.Target", spec.get("target")),
    _tc_errors,
)
_DNSCHAOS_CHECKS: tuple[Callable[[KubeObject], list[str]], ...] = (
    lambda spec: _duration_errors("Spec.Duration", spec.get("duration"), allow_empty=True),
    lambda spec: _selector_errors("Spec.ContainerSelector.PodSelector", spec),
)
