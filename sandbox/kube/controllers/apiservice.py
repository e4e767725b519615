"""The APIService availability controller: the `Available` condition kube-aggregator writes.

After kube-aggregator's `pkg/controller/status` (available_controller.go): a local
APIService (`spec.service` null) is Available, reason `Local`; one backed by a
service is unavailable while the service is missing (`ServiceNotFound`) or has
no ready endpoint (`MissingEndpoints`). The sandbox proxies no aggregated API, so
a service with endpoints still fails the discovery check (`FailedDiscoveryCheck`),
as an aggregated server that does not answer would.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sandbox.kube.clock import Clock, rfc3339
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]
APISERVICES = "apiregistration.k8s.io/apiservices"


def availability(
    apiservice: Mapping[str, Any],
    service: Mapping[str, Any] | None,
    endpoints: Mapping[str, Any] | None,
) -> tuple[str, str, str]:
    """`(status, reason, message)` of the Available condition.

    >>> availability({"spec": {"service": None}}, None, None)[:2]
    ('True', 'Local')
    >>> availability({"spec": {"service": {"name": "m", "namespace": "kube-system"}}},
    ...              None, None)
    ('False', 'ServiceNotFound', 'service/m in "kube-system" is not present')
    """
    spec = apiservice.get("spec") or {}
    ref = spec.get("service")
    if ref is None:
        return "True", "Local", "Local APIServices are always available"
    name, namespace = ref.get("name", ""), ref.get("namespace", "")
    if service is None:
        return "False", "ServiceNotFound", f'service/{name} in "{namespace}" is not present'
    addresses = [
        address
        for subset in (endpoints or {}).get("subsets") or []
        for address in subset.get("addresses") or []
    ]
    if not addresses:
        return (
            "False",
            "MissingEndpoints",
            f'endpoints for service/{name} in "{namespace}" have no addresses with port name ""',
        )
    group_version = f"/apis/{spec.get('group', '')}/{spec.get('version', '')}"
    port = ref.get("port", 443)
    cluster_ip = (service.get("spec") or {}).get("clusterIP", "")
    return (
        "False",
        "FailedDiscoveryCheck",
        f"failing or missing response from https://{cluster_ip}:{port}{group_version}: "
        "the sandbox does not proxy aggregated APIs",
    )


def available_condition(
    apiservice: Mapping[str, Any],
    service: Mapping[str, Any] | None,
    endpoints: Mapping[str, Any] | None,
    now: datetime,
) -> list[KubeObject]:
    """The conditions with Available set; lastTransitionTime kept while the status holds."""
    status, reason, message = availability(apiservice, service, endpoints)
    old = [dict(c) for c in (apiservice.get("status") or {}).get("conditions") or []]
    previous = next((c for c in old if c.get("type") == "Available"), None)
    moment = rfc3339(now)
    if previous is not None and previous.get("status") == status:
        moment = previous.get("lastTransitionTime", moment)
    condition = {
        "type": "Available",
        "status": status,
        "lastTransitionTime": moment,
        "reason": reason,
        "message": message,
    }
    return [*(c for c in old if c.get("type") != "Available"), condition]


class ApiServiceController:
    """Writes each APIService's Available condition when it or its service changes."""

    name = "apiservice-availability"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == APISERVICES:
            return [change.object["metadata"]["name"]]
        if change.resource not in ("services", "endpoints"):
            return []
        metadata = change.object.get("metadata") or {}
        where = (metadata.get("namespace"), metadata.get("name"))
        return sorted(
            a["metadata"]["name"] for a in self.store.list(APISERVICES) if _service_key(a) == where
        )

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(a["metadata"]["name"] for a in self.store.list(APISERVICES))

    def reconcile(self, key: Hashable) -> float | None:
        apiservice = self.store.find(APISERVICES, "", str(key))
        if apiservice is None:
            return None
        where = _service_key(apiservice)
        service = endpoints = None
        if where is not None:
            service = self.store.find("services", where[0], where[1])
            endpoints = self.store.find("endpoints", where[0], where[1])
        conditions = available_condition(apiservice, service, endpoints, self.clock.now())
        if conditions != (apiservice.get("status") or {}).get("conditions"):
            self.store.mutate(
                APISERVICES,
                "",
                str(key),
                lambda obj: obj.setdefault("status", {}).__setitem__("conditions", conditions),
                subresource="status",
            )
        return None


def _service_key(apiservice: Mapping[str, Any]) -> tuple[str, str] | None:
    ref = (apiservice.get("spec") or {}).get("service")
    if ref is None:
        return None
    return str(ref.get("namespace", "")), str(ref.get("name", ""))
