"""The pod network's controller: pods, NetworkPolicies, Chaos Mesh, Services -> the kernel.

One key, one desired state: every reconcile computes the whole network from what
the store holds (which pods run where, with which cgroup; which policies; which
chaos is in force; which Services and endpoints, kube-proxy's part) and hands it
to `PodNetwork`, which applies it in the background; then, once the kernel holds
it, the chaos objects' status says so ("AllInjected"), as Chaos Mesh's controllers
write it only after the chaos daemon answered. A chaos whose `duration` is over is
recovered and its status says "AllRecovered"; deleting the object recovers it at once.

Rules are by address, and addresses are shared by every sandbox on the machine, so
a pod's status is not enough: only an address the sandbox's IPAM still holds for
that pod is the pod's (a pod on a powered-off node keeps its podIP in the API, but
its address is gone). An address its pod released stays claimed until a state
without it is in the kernel; then IPAM may hand it to anyone (CNI DEL's order).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sandbox.cni import chaosplan
from sandbox.cni.chaosplan import DNSCHAOS, FINALIZER, NETWORKCHAOS, ChaosPlan, PlanInputs
from sandbox.cni.faults import DnsFault, PodEndpoint
from sandbox.cni.infrapeers import InfrastructurePeers
from sandbox.cni.netpolicy import CompiledPolicies, PolicyNamespace, PolicyPod, compile_policies
from sandbox.cni.netpolicy_nft import render_policy_chain
from sandbox.cni.podnetwork import NetworkState, PodNetwork, PodNetworkError
from sandbox.cni.ruleset import PodAddress
from sandbox.cni.services import service_routes
from sandbox.cni.zones import ZoneIsolation, zone_members
from sandbox.kube.clock import Clock
from sandbox.kube.errors import ApiError
from sandbox.kube.kubelet.cgroups import PodCgroups
from sandbox.kube.store import Change, Store

log = logging.getLogger(__name__)

KEY = "pod-network"
POLICIES = "networking.k8s.io/networkpolicies"
SLICES = "discovery.k8s.io/endpointslices"
WATCHED = frozenset({"pods", "namespaces", POLICIES, NETWORKCHAOS, DNSCHAOS, "services", SLICES})
APPLY_POLL_SECONDS = 0.1
RETRY_SECONDS = 2.0
KubeObject = dict[str, Any]
Resolve = Callable[[str], tuple[str, ...]]


class DnsFaultSink(Protocol):
    def set_faults(self, faults: Iterable[DnsFault]) -> None: ...


class AddressBook(Protocol):
    """The sandbox's IPAM, as the pod network sees it."""

    def address_of(self, owner: str) -> str | None: ...

    def detached(self) -> frozenset[str]: ...

    def finish_release(self, addresses: Iterable[str]) -> None: ...


def attached_pods(
    pods: Sequence[KubeObject], address_of: Callable[[str], str | None]
) -> list[KubeObject]:
    """The pods as the network sees them: a podIP the pod no longer holds is dropped
    (the pod stays, without an address: chaos may still select it, no rule names it)."""
    result: list[KubeObject] = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP", "")
        if not ip or address_of((pod.get("metadata") or {}).get("uid", "")) == ip:
            result.append(pod)
            continue
        stripped = {k: v for k, v in status.items() if k not in ("podIP", "podIPs")}
        result.append({**pod, "status": stripped})
    return result


def pod_endpoints(
    pods: Sequence[Mapping[str, Any]], cgroups: PodCgroups, has_cgroup: Callable[[str], bool]
) -> dict[str, PodEndpoint]:
    """Running pods with a pod IP and a cgroup of their own, by uid (the network's pods)."""
    endpoints: dict[str, PodEndpoint] = {}
    for pod in pods:
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        uid, ip = metadata.get("uid", ""), status.get("podIP", "")
        if status.get("phase") != "Running" or not ip or (pod.get("spec") or {}).get("hostNetwork"):
            continue
        if not has_cgroup(uid):
            continue
        endpoints[uid] = PodEndpoint(
            metadata.get("namespace", ""),
            metadata.get("name", ""),
            ip,
            cgroups.nft_path(uid),
            cgroups.level(uid),
        )
    return endpoints


def pod_addresses(pods: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each pod's address by uid, as the network sees it (`attached_pods`): what a Service's
    endpoint for that pod may be DNATed to.

    >>> pod_addresses([{"metadata": {"uid": "u1"}, "status": {"podIP": "127.0.2.5"}},
    ...                {"metadata": {"uid": "u2"}, "status": {}}])
    {'u1': '127.0.2.5'}
    """
    return {
        (pod.get("metadata") or {}).get("uid", ""): (pod.get("status") or {})["podIP"]
        for pod in pods
        if (pod.get("status") or {}).get("podIP")
    }


def policy_pods(pods: Sequence[Mapping[str, Any]]) -> list[PolicyPod]:
    """Every pod with an IP, as NetworkPolicy sees it (labels, named container ports)."""
    result = []
    for pod in pods:
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        ip = status.get("podIP", "")
        if not ip or status.get("phase") in ("Succeeded", "Failed"):
            continue
        ports: dict[str, tuple[int, str]] = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name"):
                    ports[port["name"]] = (
                        int(port.get("containerPort", 0)),
                        port.get("protocol", "TCP"),
                    )
        result.append(
            PolicyPod(
                metadata.get("namespace", ""),
                metadata.get("name", ""),
                ip,
                dict(metadata.get("labels") or {}),
                ports,
            )
        )
    return result


def policy_namespaces(namespaces: Sequence[Mapping[str, Any]]) -> list[PolicyNamespace]:
    return [
        PolicyNamespace(
            (ns.get("metadata") or {}).get("name", ""),
            dict((ns.get("metadata") or {}).get("labels") or {}),
        )
        for ns in namespaces
    ]


def cluster_policies(
    policies: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    namespaces: Sequence[Mapping[str, Any]],
    infrastructure: InfrastructurePeers,
) -> CompiledPolicies:
    """The NetworkPolicies over the API's pods and namespaces and the infrastructure's
    (`sandbox.cni.infrapeers`); a namespace the API has wins over the infrastructure's
    of the same name, as the API is what a cluster's CNI reads."""
    return compile_policies(
        policies,
        [*policy_pods(pods), *infrastructure.pods],
        [*infrastructure.namespaces, *policy_namespaces(namespaces)],
    )


def resolve_targets(targets: Sequence[str], resolve: Resolve) -> tuple[tuple[str, ...], list[str]]:
    """Chaos Mesh's `externalTargets`: IPs and CIDRs as given, names through the cluster DNS;
    (addresses, the names that did not resolve)."""
    addresses: list[str] = []
    unresolved: list[str] = []
    for target in targets:
        try:
            network = ipaddress.IPv4Network(target, strict=False)
        except ValueError:
            found = resolve(target)
            if found:
                addresses.extend(found)
            else:
                unresolved.append(target)
            continue
        addresses.append(str(network.network_address) if network.prefixlen == 32 else str(network))
    return tuple(sorted(set(addresses))), unresolved


@dataclass
class PodNetworkController:
    store: Store
    clock: Clock
    network: PodNetwork
    cgroups: PodCgroups
    dns: DnsFaultSink
    resolve: Resolve
    addresses: AddressBook
    # pods the API does not list but NetworkPolicy must see (the cluster DNS, the ingress
    # controller), and their namespaces
    infrastructure: InfrastructurePeers = field(default_factory=InfrastructurePeers)
    # zones FIS's disrupt-connectivity cuts off (sandbox.aws.effects sets them)
    zone_isolation: ZoneIsolation = field(default_factory=ZoneIsolation)
    name: str = "pod-network"
    _applying: asyncio.Task[None] | None = None
    _applied: NetworkState | None = None
    _failed: str = ""
    _started: bool = False

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        return [KEY] if change.resource in WATCHED else []

    def all_keys(self) -> Iterable[Hashable]:
        return [KEY]

    def reconcile(self, key: Hashable) -> float | None:
        if self._applying is not None and not self._applying.done():
            return APPLY_POLL_SECONDS
        now = self.clock.now()
        detached = self.addresses.detached()  # before the pods: what this state leaves out
        pods = attached_pods(self.store.snapshot("pods"), self.addresses.address_of)
        endpoints = pod_endpoints(
            pods, self.cgroups, lambda uid: self.cgroups.pod_dir(uid).is_dir()
        )
        plans = self._plan_chaos(pods, endpoints, now)
        faults = tuple(f for plan in plans for f in plan.faults)
        state = NetworkState(
            pods=tuple(PodAddress(e.ip, e.cgroup, e.cgroup_level) for e in endpoints.values()),
            faults=faults,
            policy_chains=self._policy_chains(pods),
            isolated=tuple(
                zone_members(zone, pods, self.store.snapshot("nodes"), hosts)
                for zone, hosts in sorted(self.zone_isolation.zones().items())
            ),
            services=service_routes(
                self.store.snapshot("services"), self.store.snapshot(SLICES), pod_addresses(pods)
            ),
        )
        self.dns.set_faults(f for plan in plans for f in plan.dns_faults)
        if state != self._applied:
            self._applying = asyncio.get_running_loop().create_task(self._apply(state, detached))
            return APPLY_POLL_SECONDS
        if not self._failed:
            self.addresses.finish_release(detached)
        for plan in plans:
            self._write_status(plan, now)
        waits = [plan.recheck_seconds for plan in plans if plan.recheck_seconds is not None]
        return min(waits) if waits else None

    def _has_cgroup(self, uid: str) -> bool:
        return self.cgroups.pod_dir(uid).is_dir()

    async def _apply(self, state: NetworkState, detached: frozenset[str]) -> None:
        try:
            if not self._started:
                await self.network.start()
                self._started = True
            await self.network.apply(state)
            self._failed = ""
            self.addresses.finish_release(detached)
        except PodNetworkError as error:
            self._failed = str(error)
            log.error("%s: %s", self.name, error)
        self._applied = state

    def _policy_chains(self, pods: Sequence[Mapping[str, Any]]) -> str:
        compiled = cluster_policies(
            self.store.snapshot(POLICIES),
            pods,
            self.store.snapshot("namespaces"),
            self.infrastructure,
        )
        return render_policy_chain(compiled)

    def _plan_chaos(
        self, pods: Sequence[Mapping[str, Any]], endpoints: Mapping[str, PodEndpoint], now: datetime
    ) -> list[ChaosPlan]:
        inputs = PlanInputs(
            pods,
            self.store.snapshot("namespaces"),
            endpoints,
            lambda targets: resolve_targets(targets, self.resolve),
            self.store.snapshot("nodes"),
        )
        return [
            chaosplan.plan(resource, chaos, inputs, now)
            for resource in (NETWORKCHAOS, DNSCHAOS)
            for chaos in self.store.snapshot(resource)
        ]

    def _write_status(self, plan: ChaosPlan, now: datetime) -> None:
        status = plan.status(applied=True, apply_error=self._failed, now=now)
        metadata = plan.chaos.get("metadata") or {}
        if status != plan.chaos.get("status"):
            updated = copy.deepcopy(dict(plan.chaos))
            updated["status"] = status
            try:
                self.store.update(plan.resource, updated)  # no status subresource: its CRD has none
            except ApiError as failure:  # gone or changed meanwhile: its change brings us back
                log.debug("%s: status of %s: %s", self.name, plan.key, failure)
                return
        records = (status.get("experiment") or {}).get("containerRecords") or []
        recovered = all(r.get("phase") == "Not Injected" for r in records)
        finalizers = metadata.get("finalizers") or []
        if not metadata.get("deletionTimestamp") and FINALIZER not in finalizers:
            self._finalizer(plan, add=True)
        elif metadata.get("deletionTimestamp") and FINALIZER in finalizers and recovered:
            self._finalizer(plan, add=False)

    def _finalizer(self, plan: ChaosPlan, add: bool) -> None:
        """Chaos Mesh's records finalizer: added to every chaos object, removed once every
        record is recovered, so a deleted object is gone only when its fault is
        (controllers/common/finalizers)."""
        metadata = plan.chaos.get("metadata") or {}

        def change(obj: KubeObject) -> None:
            finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != FINALIZER]
            obj["metadata"]["finalizers"] = [*finalizers, FINALIZER] if add else finalizers

        try:
            self.store.mutate(
                plan.resource, metadata.get("namespace", ""), metadata["name"], change
            )
        except ApiError as failure:
            log.debug("%s: finalizer of %s: %s", self.name, plan.key, failure)
