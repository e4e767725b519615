"""The `kube-root-ca.crt` ConfigMap in every namespace: the CA a pod verifies the API with.

As kube-controller-manager's root CA publisher (pkg/controller/certificates/
rootcacertpublisher/publisher.go `syncNamespace`): in every Active namespace a
ConfigMap `kube-root-ca.crt` with `ca.crt` = the cluster's CA bundle and the
annotation `kubernetes.io/description`; created when missing, its data and that
annotation put back when changed (other annotations and labels kept), nothing done
in a namespace that is not Active (terminating). The projected `kube-api-access-*`
volume every pod gets reads `ca.crt` from it.

    >>> publish(None, "CA")["data"], publish({"data": {"ca.crt": "CA"},
    ...     "metadata": {"annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}}, "CA")
    ({'ca.crt': 'CA'}, None)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]
NAME = "kube-root-ca.crt"
KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


def publish(current: Mapping[str, Any] | None, ca: str) -> KubeObject | None:
    """The ConfigMap to create (`current` None) or write back, or None when it is right."""
    data = {KEY: ca}
    if current is None:
        return {
            "metadata": {"name": NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
            "data": data,
        }
    annotations = dict((current.get("metadata") or {}).get("annotations") or {})
    if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
        return None
    annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
    return {
        **current,
        "metadata": {**current["metadata"], "annotations": annotations},
        "data": data,
    }


class RootCaPublisher:
    name = "root-ca-cert-publisher"

    def __init__(self, store: Store, ca: str) -> None:
        self.store = store
        self.ca = ca

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        metadata = change.object.get("metadata") or {}
        if change.resource == "namespaces":
            return [metadata.get("name", "")]
        if change.resource == "configmaps" and metadata.get("name") == NAME:
            return [metadata.get("namespace", "")]
        return []

    def all_keys(self) -> Iterable[Hashable]:
        return [ns["metadata"]["name"] for ns in self.store.snapshot("namespaces")]

    def reconcile(self, key: Hashable) -> float | None:
        namespace = self.store.find("namespaces", "", str(key))
        if namespace is None or (namespace.get("status") or {}).get("phase") != "Active":
            return None
        current = self.store.find("configmaps", str(key), NAME)
        wanted = publish(current, self.ca)
        if wanted is None:
            return None
        if current is None:
            wanted["metadata"]["namespace"] = str(key)
            self.store.create("configmaps", wanted)
        else:
            self.store.update("configmaps", wanted)
        return None
