"""Every active namespace has a ServiceAccount named `default` (pods run as it by default).

Upstream: pkg/controller/serviceaccount/serviceaccounts_controller.go
(`syncNamespace`): for an Active namespace, create each configured account
(`default`) that is missing; a deleted `default` is created again.

>>> missing_accounts({"status": {"phase": "Active"}}, set())
['default']
>>> missing_accounts({"status": {"phase": "Terminating"}}, set())
[]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from sandbox.kube.clock import Clock
from sandbox.kube.errors import ApiError
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

DEFAULT_ACCOUNTS = ("default",)  # serviceaccountcontroller.DefaultServiceAccountsControllerOptions


def missing_accounts(namespace: Mapping[str, Any], existing: set[str]) -> list[str]:
    """The accounts to create in a namespace: none unless it is Active."""
    if (namespace.get("status") or {}).get("phase", "Active") != "Active":
        return []
    if (namespace.get("metadata") or {}).get("deletionTimestamp"):
        return []
    return [name for name in DEFAULT_ACCOUNTS if name not in existing]


class ServiceAccountsController:
    name = "serviceaccount"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == "namespaces":
            return [change.object["metadata"]["name"]]
        if change.resource == "serviceaccounts" and change.type == "DELETED":
            return [change.object["metadata"].get("namespace", "")]
        return []

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(n["metadata"]["name"] for n in self.store.snapshot("namespaces"))

    def reconcile(self, key: Hashable) -> float | None:
        namespace = self.store.find("namespaces", "", str(key))
        if namespace is None:
            return None
        existing = {a["metadata"]["name"] for a in self.store.snapshot("serviceaccounts", str(key))}
        for name in missing_accounts(namespace, existing):
            try:
                self.store.create(
                    "serviceaccounts", {"metadata": {"name": name, "namespace": str(key)}}
                )
            except ApiError as error:  # the namespace started terminating meanwhile
                if error.code not in (403, 409):
                    raise
        return None
