"""Network and DNS faults through Chaos Mesh: NetworkChaos and DNSChaos objects, made safe.

Faults inside the pods' network need an agent in the cluster; these actions use the one
users already run, Chaos Mesh, by creating its objects through the Kubernetes API (on
the sandbox, its emulation of the same API). Before creating one they refuse, in one
line, when Chaos Mesh is not served, when a namespace is off the allowlist, or when the
selector picks no running pod or more than `max_disrupted_pods`. The delete is written
to the recovery journal before the create, with a token the object is labelled with, so
`remove_chaos` (the rollback) and `resilience recover` delete exactly what a run
created. Orphaned network chaos after a crash is what users of these engines complain
about most; a pod or an object already gone counts as recovered.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from chaoslib.exceptions import ActivityFailed, InterruptExecution
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.chaos.blast_radius import BUDGET_KEY
from resilience.chaos.chaosmesh_spec import (
    GROUP,
    PLURALS,
    TOKEN_LABEL,
    VERSION,
    ChaosObject,
    PodSelection,
    dependency_hosts,
    dns_chaos,
    network_chaos,
    planned_disruptions,
    refusal,
)
from resilience.chaos.controls.interlocks import safety_settings
from resilience.chaos.kube import REQUEST_TIMEOUT, api_client, apps, core, items
from resilience.chaos.waiting import seconds_until
from resilience.safety import undo_journal

__all__ = ["inject_dns_fault", "inject_network_fault", "remove_chaos"]
UNDO_KIND: Final = "delete-chaos-mesh-object"
POLL_SECONDS = 1.0
GONE_PHASES = ("Succeeded", "Failed")


def custom(secrets: dict[str, Any] | None = None) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client(secrets))


def inject_network_fault(
    name: str,
    action: str,
    label_selectors: Mapping[str, str] | None = None,
    namespaces: Sequence[str] = (),
    mode: str = "all",
    value: str | int | None = None,
    direction: str = "to",
    external_targets: Sequence[str] = (),
    targets_from_env: Sequence[str] = (),
    deployment: str | None = None,
    target: Mapping[str, Any] | None = None,
    delay: Mapping[str, Any] | None = None,
    loss: Mapping[str, Any] | None = None,
    bandwidth: Mapping[str, Any] | None = None,
    duration: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a Chaos Mesh NetworkChaos `name`: `action` delay, loss, partition or bandwidth
    on the traffic of the pods matching `label_selectors` in `namespaces` (default: the
    configuration's `namespace`), picked by `mode` (one, all, fixed, fixed-percent,
    random-max-percent) and `value`, in `direction` (to, from, both), toward
    `external_targets` (IPs, CIDRs or names, which Chaos Mesh resolves) and/or `target`
    (`{selector: {namespaces, labelSelectors}, mode, value}`), for `duration` ("30s";
    none: until removed).

    `targets_from_env` adds the hosts of the URLs in those env vars of `deployment`'s
    containers (`[DB_URL]`: the database endpoint the service is configured with, on
    any target). The action's block is `delay` (`{latency: 50ms, jitter: 5ms,
    correlation: "25"}`), `loss` (`{loss: "100"}`) or `bandwidth` (`{rate: 1mbps,
    limit: 20971520, buffer: 10000}`), as in the CRD.

    Refused in one line, before anything is created, when Chaos Mesh's NetworkChaos is
    not served, a namespace is off the allowlist, or the selector picks no running pod
    or more than `max_disrupted_pods`. The delete is journaled before the create; the
    rollback is `remove_chaos`. Returns the object's namespace, name and the pods it
    may disrupt; `chaos_mesh_condition_seconds` waits for it to be injected.
    """
    selection = _selection(namespaces, label_selectors, mode, value, configuration)
    hosts = list(external_targets)
    if targets_from_env:
        for host in _hosts_from_deployment(selection.namespaces[0], deployment, targets_from_env):
            if host not in hosts:
                hosts.append(host)
    target_selection = None
    if target is not None:
        selector = target.get("selector") or {}
        target_selection = PodSelection.of(
            selector.get("namespaces") or selection.namespaces,
            selector.get("labelSelectors"),
            str(target.get("mode") or "all"),
            target.get("value"),
        )
    parameters = {"delay": delay, "loss": loss, "bandwidth": bandwidth}.get(action)
    chaos = network_chaos(
        name,
        uuid.uuid4().hex[:12],
        selection,
        action,
        direction,
        hosts,
        target_selection,
        parameters,
        duration,
    )
    # with `from` or `both`, Chaos Mesh injects into the target's pods too
    selections = [selection]
    if target_selection is not None and direction != "to":
        selections.append(target_selection)
    planned = _check_safety(chaos, selections, configuration, secrets)
    _create(chaos, secrets)
    return _created(chaos, planned)


def inject_dns_fault(
    name: str,
    action: str = "error",
    patterns: Sequence[str] = (),
    patterns_from_env: Sequence[str] = (),
    deployment: str | None = None,
    label_selectors: Mapping[str, str] | None = None,
    namespaces: Sequence[str] = (),
    mode: str = "all",
    value: str | int | None = None,
    duration: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a Chaos Mesh DNSChaos `name`: the selected pods' lookups of names matching
    `patterns` (Chaos Mesh's: exact names, `?` and `*` wildcards) fail (`action: error`,
    SERVFAIL) or get a random address (`random`), for `duration` (none: until removed).

    `patterns_from_env` adds the hosts of the URLs in those env vars of `deployment`'s
    containers (`[DB_URL]`: the database endpoint's name). Pods as in
    `inject_network_fault` (`label_selectors`, `namespaces`, `mode`, `value`), with the
    same refusals, journal and rollback (`remove_chaos`). Only lookups fail: connections
    already open keep working, so what this tests is every new connection, for
    instance after a failover moves the database.
    """
    selection = _selection(namespaces, label_selectors, mode, value, configuration)
    names = list(patterns)
    if patterns_from_env:
        for host in _hosts_from_deployment(selection.namespaces[0], deployment, patterns_from_env):
            if host not in names:
                names.append(host)
    chaos = dns_chaos(name, uuid.uuid4().hex[:12], selection, action, names, duration)
    planned = _check_safety(chaos, [selection], configuration, secrets)
    _create(chaos, secrets)
    return _created(chaos, planned)


def remove_chaos(
    name: str | None = None,
    timeout: float = 60.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Delete the Chaos Mesh objects this suite created and has not deleted yet (those
    with a pending delete in the recovery journal), or only the one called `name`, and
    wait (at most `timeout` seconds) until each is gone: deleting the object is how Chaos
    Mesh recovers the traffic. An object already gone is recovered. The rollback of
    `inject_network_fault` and `inject_dns_fault`; safe to run twice.

    `deleted` says when each object was gone (Unix seconds): the end of its fault, which
    the game-day report draws as a band from the object's AllInjected on."""
    removed = []
    deleted = []
    for undo in undo_journal.pending(undo_journal.read()):
        if undo.kind != UNDO_KIND or (name is not None and undo.target.get("name") != name):
            continue
        removed.append(delete_journaled(custom(secrets), undo.target, float(timeout)))
        deleted.append(
            {
                "kind": undo.target["kind"],
                "namespace": undo.target["namespace"],
                "name": undo.target["name"],
                "gone_at": round(time.time(), 3),
            }
        )
        undo_journal.mark_done(undo.id)
    return {"removed": removed, "deleted": deleted}


def delete_journaled(
    api: client.CustomObjectsApi, target: Mapping[str, Any], timeout: float
) -> str:
    """Delete the journaled object if it is still the one the run created (its token label),
    then wait until it is gone; what was done, in a line. 404 is success: never created,
    already deleted, or expired and cleaned up."""
    where = f"{target['kind']} {target['namespace']}/{target['name']}"
    coordinates = (target["group"], target["version"], target["namespace"], target["plural"])
    try:
        found = cast(
            "dict[str, Any]",
            api.get_namespaced_custom_object(
                *coordinates, target["name"], _request_timeout=REQUEST_TIMEOUT
            ),
        )
    except ApiException as error:
        if error.status == 404:
            return f"{where}: already gone"
        raise
    token = ((found.get("metadata") or {}).get("labels") or {}).get(TOKEN_LABEL)
    if token != target["token"]:
        return f"{where}: not the one this run created (token {token!r}), left alone"
    try:
        api.delete_namespaced_custom_object(
            *coordinates, target["name"], _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status != 404:
            raise

    def gone() -> tuple[bool, str]:
        try:
            api.get_namespaced_custom_object(
                *coordinates, target["name"], _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                return True, "gone"
            raise
        return False, "still there (Chaos Mesh recovers the pods before its finalizer lets go)"

    seconds = seconds_until(gone, timeout, f"{where} deleted", POLL_SECONDS)
    return f"{where} deleted in {seconds:.1f} s"


def _selection(
    namespaces: Sequence[str],
    label_selectors: Mapping[str, str] | None,
    mode: str,
    value: str | int | None,
    configuration: dict[str, Any] | None,
) -> PodSelection:
    chosen = list(namespaces) or [str(n) for n in [(configuration or {}).get("namespace")] if n]
    return PodSelection.of(chosen, label_selectors, mode, value)


def _hosts_from_deployment(
    namespace: str, deployment: str | None, env_names: Sequence[str]
) -> list[str]:
    if not deployment:
        raise ActivityFailed("reading endpoints from env vars needs the deployment's name")
    found: Any = apps().read_namespaced_deployment(
        deployment, namespace, _request_timeout=REQUEST_TIMEOUT
    )
    env = {
        variable.name: variable.value
        for container in found.spec.template.spec.containers
        for variable in container.env or []
        if variable.value is not None
    }
    return dependency_hosts(env, env_names)


def served(api: client.CustomObjectsApi, kind: str) -> bool:
    """True when the API server serves chaos-mesh.org/v1alpha1 with `kind` (the CRDs are
    installed and established)."""
    try:
        resources = api.get_api_resources(GROUP, VERSION, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return any(r.kind == kind for r in (resources.resources or []) if r is not None)


def _check_safety(
    chaos: ChaosObject,
    selections: Sequence[PodSelection],
    configuration: dict[str, Any] | None,
    secrets: dict[str, Any] | None,
) -> int:
    """Refuse (InterruptExecution: the run stops, its rollbacks run) in one line; the
    number of pods the object may disrupt."""
    what = f"{chaos.kind} {chaos.namespace}/{chaos.name}"
    if not served(custom(secrets), chaos.kind):
        raise InterruptExecution(
            f"{what}: Chaos Mesh is not installed ({chaos.kind}.{GROUP}/{VERSION} is not"
            " served by this cluster); install Chaos Mesh or target a cluster that has it"
        )
    allowlist = safety_settings().namespace_allowlist
    namespaces = [n for s in selections for n in s.namespaces]
    planned = 0
    running_total = 0
    api = core(secrets)
    for selection in selections:
        matched, running = _count_pods(api, selection)
        running_total += running
        planned += planned_disruptions(selection, matched, running)
    budget = (configuration or {}).get(BUDGET_KEY)
    refused = refusal(
        what,
        namespaces,
        allowlist,
        running_total,
        planned,
        None if budget is None else int(budget),
    )
    if refused is not None:
        raise InterruptExecution(refused)
    return planned


def _count_pods(api: client.CoreV1Api, selection: PodSelection) -> tuple[int, int]:
    """(pods Chaos Mesh would count, pods that can be disrupted: running, not terminating)."""
    matched = running = 0
    for namespace in selection.namespaces:
        pods = items(
            api.list_namespaced_pod(
                namespace,
                label_selector=selection.label_selector() or None,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )
        for pod in pods:
            if pod.status is not None and pod.status.phase in GONE_PHASES:
                continue
            matched += 1
            live = pod.metadata.deletion_timestamp is None
            running += int(live and pod.status is not None and pod.status.phase == "Running")
    return matched, running


def _create(chaos: ChaosObject, secrets: dict[str, Any] | None) -> None:
    """Journal the delete, then create. A name already taken is refused and its undo
    marked done: that object is not this run's to delete."""
    undo_id = undo_journal.record(UNDO_KIND, chaos.undo_target())
    try:
        custom(secrets).create_namespaced_custom_object(
            GROUP,
            VERSION,
            chaos.namespace,
            PLURALS[chaos.kind],
            chaos.body,
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as error:
        if error.status == 409:
            undo_journal.mark_done(undo_id)
            raise InterruptExecution(
                f"{chaos.kind} {chaos.namespace}/{chaos.name} already exists (left by an"
                " earlier run? `resilience recover` deletes what the journal lists)"
            ) from None
        raise


def _created(chaos: ChaosObject, planned: int) -> dict[str, Any]:
    return {
        "kind": chaos.kind,
        "namespace": chaos.namespace,
        "name": chaos.name,
        "pods": planned,
        "spec": chaos.body["spec"],
    }
