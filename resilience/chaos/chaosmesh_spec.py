"""Chaos Mesh objects as data, and the safety decisions taken before one is created.

Pure functions only, so the experiments' objects are validated against the vendored
CRD schema (`schemas/chaos-mesh/`) and every refusal is a table test:

- `network_chaos` / `dns_chaos` render the `chaos-mesh.org/v1alpha1` object an action
  creates, labelled with the token its journaled undo deletes it by;
- `most_selected` is Chaos Mesh's `FilterObjectsByMode` (pkg/selector/generic/mode.go)
  as an upper bound: how many of `count` matched pods a mode can pick;
- `refusal` says, in one line, why an object must not be created (a namespace off the
  allowlist, a selector that picks no running pod, or more than `max_disrupted_pods`);
- `dependency_hosts` reads the endpoints a Deployment's container is configured with,
  so an experiment aims at the database the service uses on any target;
- `go_duration_seconds` reads the CRD's durations (`duration`, `latency`, `jitter`),
  for the report's fault bands and the latency probe.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from chaoslib.exceptions import InvalidActivity

from resilience.safety.refusals import blast_radius_refusal, namespace_refusal

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"NetworkChaos": "networkchaos", "DNSChaos": "dnschaos"}
TOKEN_LABEL = "harmonyflow.io/undo"
MANAGED_BY = {"app.kubernetes.io/managed-by": "harmonyflow-resilience"}

Mode = Literal["one", "all", "fixed", "fixed-percent", "random-max-percent"]
MODES: tuple[str, ...] = ("one", "all", "fixed", "fixed-percent", "random-max-percent")
NETWORK_ACTIONS: tuple[str, ...] = ("delay", "loss", "partition", "bandwidth")
DIRECTIONS: tuple[str, ...] = ("to", "from", "both")
DNS_ACTIONS: tuple[str, ...] = ("error", "random")


@dataclass(frozen=True)
class PodSelection:
    """Which pods a Chaos Mesh object acts on: `selector` (namespaces, labelSelectors)
    plus `mode` and `value`, as in the CRD."""

    namespaces: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()
    mode: Mode = "all"
    value: str | None = None

    @classmethod
    def of(
        cls,
        namespaces: Iterable[str],
        labels: Mapping[str, str] | None,
        mode: str,
        value: str | int | None,
    ) -> PodSelection:
        if mode not in MODES:
            raise InvalidActivity(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        chosen = tuple(namespaces)
        if not chosen:
            raise InvalidActivity("a Chaos Mesh selector needs at least one namespace")
        text = None if value is None or value == "" else str(value)
        if mode not in ("one", "all") and text is None:
            raise InvalidActivity(f"mode {mode!r} needs a value")
        return cls(chosen, tuple(sorted((labels or {}).items())), mode, text)  # type: ignore[arg-type]

    def label_selector(self) -> str:
        """The labelSelectors as a list call's `label_selector` ("app=x,tier=y")."""
        return ",".join(f"{k}={v}" for k, v in self.labels)

    def spec(self) -> dict[str, Any]:
        """The `selector`, `mode` (and `value`) fields of the object's spec."""
        selector: dict[str, Any] = {"namespaces": list(self.namespaces)}
        if self.labels:
            selector["labelSelectors"] = dict(self.labels)
        rendered: dict[str, Any] = {"selector": selector, "mode": self.mode}
        if self.value is not None:
            rendered["value"] = self.value
        return rendered


@dataclass(frozen=True)
class ChaosObject:
    """A Chaos Mesh object to create, and what its undo needs to find and delete it."""

    kind: str
    namespace: str
    name: str
    token: str
    body: dict[str, Any] = field(hash=False, compare=False)

    @property
    def plural(self) -> str:
        return PLURALS[self.kind]

    def undo_target(self) -> dict[str, Any]:
        """What the recovery journal holds: enough to delete it with no experiment at hand."""
        return {
            "group": GROUP,
            "version": VERSION,
            "plural": self.plural,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "token": self.token,
        }


def most_selected(mode: str, value: str | None, count: int) -> int:
    """The most pods Chaos Mesh's mode picks among `count` matched (its FilterObjectsByMode;
    random-max-percent at its maximum). A value Chaos Mesh rejects is an invalid activity.

    >>> [most_selected("one", None, 3), most_selected("all", None, 3)]
    [1, 3]
    >>> [most_selected("fixed", "5", 3), most_selected("fixed-percent", "34", 3)]
    [3, 2]
    """
    if count <= 0:
        return 0
    if mode == "one":
        return 1
    if mode == "all":
        return count
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidActivity(f"mode {mode}: value {value!r} is not an integer") from None
    if number <= 0:
        raise InvalidActivity(f"mode {mode}: value {number} selects nothing (must be above 0)")
    if mode == "fixed":
        return min(number, count)
    if number > 100:
        raise InvalidActivity(f"mode {mode}: value {number} is not a percentage in (0, 100]")
    return math.ceil(count * number / 100)


def planned_disruptions(selection: PodSelection, matched: int, running: int) -> int:
    """Pods the object would act on: the mode applied to what Chaos Mesh counts (every
    matched pod), capped by those that can be disrupted at all (running ones).

    >>> planned_disruptions(PodSelection(("ns",), mode="fixed-percent", value="50"), 4, 1)
    1
    """
    return min(most_selected(selection.mode, selection.value, matched), running)


def refusal(
    what: str,
    namespaces: Sequence[str],
    allowlist: Sequence[str],
    running: int,
    planned: int,
    budget: int | None,
) -> str | None:
    """Why `what` must not be created, in one line; None when it may.

    >>> refusal("NetworkChaos x", ["harmonyflow"], ["harmonyflow"], 3, 3, 1)
    'NetworkChaos x would disrupt 3 pods at once, more than the budget of 1 (max_disrupted_pods)'
    """
    for namespace in namespaces:
        off_list = namespace_refusal(namespace, allowlist)
        if off_list is not None:
            return f"{what}: {off_list.message}"
    if running == 0 or planned == 0:
        return f"{what}: the selector matches no running pod; nothing to test, refusing"
    if budget is not None:
        over = blast_radius_refusal(planned, int(budget), what)
        if over is not None:
            return f"{over.message} (max_disrupted_pods)"
    return None


def metadata(namespace: str, name: str, token: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**MANAGED_BY, TOKEN_LABEL: token},
    }


def network_chaos(
    name: str,
    token: str,
    selection: PodSelection,
    action: str,
    direction: str = "to",
    external_targets: Sequence[str] = (),
    target: PodSelection | None = None,
    parameters: Mapping[str, Any] | None = None,
    duration: str | None = None,
) -> ChaosObject:
    """The NetworkChaos that acts on `selection`'s pods, in the first of its namespaces.

    `parameters` is the action's block as the CRD spells it (`delay: {latency, jitter,
    correlation}`, `loss: {loss, correlation}`, `bandwidth: {rate, limit, buffer}`;
    partition has none). Chaos Mesh's webhook rejects `from`/`both` for netem actions
    with external targets, or with no target at all; that is refused here already.
    """
    if action not in NETWORK_ACTIONS:
        raise InvalidActivity(f"action {action!r}: expected one of {', '.join(NETWORK_ACTIONS)}")
    if direction not in DIRECTIONS:
        raise InvalidActivity(f"direction {direction!r}: expected one of {', '.join(DIRECTIONS)}")
    if action != "partition" and direction != "to" and (external_targets or target is None):
        raise InvalidActivity(
            f"direction {direction!r} with action {action!r} needs a target selector and no"
            " external targets (Chaos Mesh's webhook refuses it otherwise)"
        )
    if action == "partition" and direction != "to" and target is None and not external_targets:
        raise InvalidActivity(f"direction {direction!r} needs a target or external targets")
    if action != "partition" and not parameters:
        raise InvalidActivity(f"action {action!r} needs its parameters ({action}: {{...}})")
    spec: dict[str, Any] = {"action": action, **selection.spec(), "direction": direction}
    if action != "partition":
        spec[action] = dict(parameters or {})
    if external_targets:
        spec["externalTargets"] = list(external_targets)
    if target is not None:
        spec["target"] = target.spec()
    return chaos_object("NetworkChaos", name, token, selection, spec, duration)


def dns_chaos(
    name: str,
    token: str,
    selection: PodSelection,
    action: str,
    patterns: Sequence[str],
    duration: str | None = None,
) -> ChaosObject:
    """The DNSChaos that makes `selection`'s pods' lookups of `patterns` fail (`error`:
    SERVFAIL) or return a random address (`random`). No pattern would mean every name,
    which is never what an experiment on one dependency wants: refused."""
    if action not in DNS_ACTIONS:
        raise InvalidActivity(f"action {action!r}: expected one of {', '.join(DNS_ACTIONS)}")
    if not patterns:
        raise InvalidActivity("a DNSChaos needs at least one pattern (none means every name)")
    spec: dict[str, Any] = {"action": action, **selection.spec(), "patterns": list(patterns)}
    return chaos_object("DNSChaos", name, token, selection, spec, duration)


def chaos_object(
    kind: str,
    name: str,
    token: str,
    selection: PodSelection,
    spec: dict[str, Any],
    duration: str | None,
) -> ChaosObject:
    """The object in the selection's first namespace, with its `duration` when given."""
    if duration:
        spec["duration"] = duration
    namespace = selection.namespaces[0]
    body = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata(namespace, name, token),
        "spec": spec,
    }
    return ChaosObject(kind, namespace, name, token, body)


def dependency_hosts(env: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """The hosts of the URLs in the env vars `names` (a comma-separated list of URLs
    gives each host), in order, without repeats.

    >>> dependency_hosts({"DB_URL": "postgresql://u@db.example:5432/x"}, ["DB_URL"])
    ['db.example']
    """
    hosts: list[str] = []
    for name in names:
        if name not in env:
            raise InvalidActivity(f"env var {name} is not set on the container")
        for url in env[name].split(","):
            host = urlsplit(url.strip()).hostname
            if not host:
                raise InvalidActivity(f"env var {name}: {url.strip()!r} names no host")
            if host not in hosts:
                hosts.append(host)
    return hosts


def condition(body: Mapping[str, Any], kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of the object's condition `kind`, if any.

    >>> condition({"status": {"conditions": [{"type": "AllInjected", "status": "True"}]}},
    ...           "AllInjected")
    'True'
    """
    for entry in (body.get("status") or {}).get("conditions") or ():
        if entry.get("type") == kind:
            return str(entry.get("status"))
    return None


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: str) -> float:
    """Seconds of a Go duration, as Chaos Mesh's `duration`, `latency` and `jitter` are
    written (`time.ParseDuration`: "50ms", "1.5s", "1m30s", "0"); InvalidActivity names a
    malformed one.

    >>> go_duration_seconds("50ms"), go_duration_seconds("1m30s"), go_duration_seconds("0")
    (0.05, 90.0, 0.0)
    """
    text = str(text).strip()
    if text == "0":
        return 0.0
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidActivity(f"not a duration: {text!r} (like 50ms, 1.5s, 1m30s)")
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)
