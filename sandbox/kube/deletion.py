"""What a DELETE of one object answers: the object or a Status, and with which HTTP code.

Clients deserialise the answer by the type the OpenAPI document gives the operation,
so answering a Status where kube-apiserver answers the object breaks them: the 37.x
Python client validates `CoreV1Api.delete_namespaced_service` against `V1Service` and
fails on `status: "Success"`. Upstream (k8s.io/apiserver, checked at
kubernetes/apiserver 24a394e5, July 2026):

- `pkg/registry/generic/registry/store.go`, `Store.Delete`: an object that this request
  does not remove (a graceful period runs, or finalizers are pending) is answered as
  updated, with its deletionTimestamp, whatever the registry. An object that is removed
  goes through `finalizeDelete`: the removed object when the registry sets
  `ReturnDeletedObject`, else `Status{status: Success, details: {name, group,
  kind: <resource plural>, uid}}` (no `code`; "Yes we set Kind field to resource").
- `pkg/endpoints/handlers/delete.go`, `DeleteResource`: 200, except 202 when the object
  was not removed and the client sent `orphanDependents: false` ("We want to do this
  always if resource was not deleted immediately, but that will break existing clients").
- `pkg/endpoints/installer.go`: the OpenAPI type of the DELETE answer is the kind exactly
  when the storage reports `DeleteReturnsDeletedObject()`, i.e. `ReturnDeletedObject`.

Which registries set `ReturnDeletedObject` is a column of the resource table
(`ResourceType.returns_deleted_object`, sources cited there). One upstream path is not
modelled: a second DELETE of a graceful kind still inside its grace period answers
through `finalizeDelete` too; the only graceful kind served, pods, returns the object
either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.kube.resources import ResourceType

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class DeleteAnswer:
    code: int
    body: KubeObject


def delete_answer(
    rt: ResourceType, obj: KubeObject, *, removed: bool, orphan_dependents: bool | None = None
) -> DeleteAnswer:
    """The answer to DELETE of `obj`: its last state if removed, else its state now.

    >>> from sandbox.kube.resources import by_key
    >>> cm = {"kind": "ConfigMap", "metadata": {"name": "c", "uid": "u"}}
    >>> delete_answer(by_key("configmaps"), cm, removed=True).body["details"]
    {'name': 'c', 'kind': 'configmaps', 'uid': 'u'}
    >>> svc = {"kind": "Service", "metadata": {"name": "s", "uid": "u"}}
    >>> delete_answer(by_key("services"), svc, removed=True).body["kind"]
    'Service'
    >>> delete_answer(by_key("configmaps"), cm, removed=False, orphan_dependents=False).code
    202
    """
    code = 202 if not removed and orphan_dependents is False else 200
    if not removed or rt.returns_deleted_object:
        return DeleteAnswer(code, obj)
    metadata = obj.get("metadata") or {}
    details = {
        "name": metadata.get("name"),
        "group": rt.group,
        "kind": rt.plural,
        "uid": metadata.get("uid"),
    }
    return DeleteAnswer(
        code,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            # StatusDetails fields are all omitempty: core resources carry no group.
            "details": {key: value for key, value in details.items() if value},
        },
    )
