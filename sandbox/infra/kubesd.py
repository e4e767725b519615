"""Prometheus's `kubernetes_sd_configs` (role `endpointslice`) for a Prometheus built without it.

Debian's `prometheus` package (the one `make setup` installs) is built without the
Kubernetes service discovery: client-go is not packaged in Debian, so
`kubernetes_sd_configs` is an unknown field there. On EKS Prometheus discovers the
pods itself; in the sandbox this bridge does the same work: it reads EndpointSlices,
Services and Pods from the API server (a real HTTP client of the emulator, through
the same URL a kubeconfig names) and writes a `file_sd` file whose targets carry
exactly the `__meta_kubernetes_*` labels that Prometheus's endpointslice role
gives them. The scrape job's `relabel_configs` are therefore the ones staging uses
with `kubernetes_sd_configs`; only the discovery block differs.

`target_groups` is the pure part (tested by a table); `KubeSdBridge` lists every
`refresh_seconds` and rewrites the file atomically when the groups changed
(Prometheus watches the file with inotify).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
TargetGroup = dict[str, Any]
META = "__meta_kubernetes_"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REFRESH_SECONDS = 1.0
REQUEST_TIMEOUT_SECONDS = 5.0
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(name: str) -> str:
    """Prometheus's strutil.SanitizeLabelName.

    >>> sanitize("app.kubernetes.io/name")
    'app_kubernetes_io_name'
    """
    return _INVALID.sub("_", name)


def _object_meta(prefix: str, obj: KubeObject) -> dict[str, str]:
    """`<prefix>_label_<k>`, `_labelpresent_<k>`, `_annotation_<k>`, `_annotationpresent_<k>`."""
    metadata = obj.get("metadata") or {}
    labels: dict[str, str] = {}
    for kind, values in (
        ("label", metadata.get("labels")),
        ("annotation", metadata.get("annotations")),
    ):
        for key, value in (values or {}).items():
            labels[f"{prefix}_{kind}_{sanitize(key)}"] = str(value)
            labels[f"{prefix}_{kind}present_{sanitize(key)}"] = "true"
    return labels


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _pod_labels(pod: KubeObject) -> dict[str, str]:
    metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ready = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"),
        "unknown",
    )
    labels = {
        f"{META}pod_name": metadata["name"],
        f"{META}pod_ip": status.get("podIP", ""),
        f"{META}pod_ready": str(ready).lower(),
        f"{META}pod_phase": status.get("phase", ""),
        f"{META}pod_node_name": spec.get("nodeName", ""),
        f"{META}pod_host_ip": status.get("hostIP", ""),
        f"{META}pod_uid": metadata.get("uid", ""),
        **_object_meta(f"{META}pod", pod),
    }
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("controller"):
            labels[f"{META}pod_controller_kind"] = owner.get("kind", "")
            labels[f"{META}pod_controller_name"] = owner.get("name", "")
    return labels


def _container_labels(pod: KubeObject, port: KubeObject) -> dict[str, str]:
    """The pod's container that declares the endpoint's port, as Prometheus finds it."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("containerPort") == port.get("port"):
                return {
                    f"{META}pod_container_name": container.get("name", ""),
                    f"{META}pod_container_image": container.get("image", ""),
                    f"{META}pod_container_port_name": declared.get("name", ""),
                    f"{META}pod_container_port_number": str(declared.get("containerPort")),
                    f"{META}pod_container_port_protocol": declared.get("protocol", "TCP"),
                    f"{META}pod_container_init": "false",
                }
    return {}


def target_groups(
    slices: Sequence[KubeObject], services: Sequence[KubeObject], pods: Sequence[KubeObject]
) -> list[TargetGroup]:
    """One file_sd group per EndpointSlice, one target per (endpoint address, port).

    >>> slice_ = {"metadata": {"name": "web-abc", "namespace": "d",
    ...                        "labels": {"kubernetes.io/service-name": "web"}},
    ...           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
    ...           "endpoints": [{"addresses": ["127.0.2.5"], "conditions": {"ready": True},
    ...                          "zone": "us-west-2a", "nodeName": "n1",
    ...                          "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "d"}}]}
    >>> svc = {"metadata": {"name": "web", "namespace": "d", "labels": {"app": "web"}}}
    >>> pod = {"metadata": {"name": "web-1", "namespace": "d"}, "spec": {"nodeName": "n1"}}
    >>> [group] = target_groups([slice_], [svc], [pod])
    >>> group["targets"], group["labels"]["__meta_kubernetes_service_label_app"]
    (['127.0.2.5:8080'], 'web')
    >>> meta = group["labels"]
    >>> meta["__meta_kubernetes_pod_name"], meta["__meta_kubernetes_endpointslice_endpoint_zone"]
    ('web-1', 'us-west-2a')
    """
    services_by_key = {
        (s["metadata"].get("namespace", ""), s["metadata"]["name"]): s for s in services
    }
    pods_by_key = {(p["metadata"].get("namespace", ""), p["metadata"]["name"]): p for p in pods}
    groups: list[TargetGroup] = []
    for endpoint_slice in sorted(
        slices, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"])
    ):
        metadata = endpoint_slice["metadata"]
        namespace = metadata.get("namespace", "")
        common = {
            f"{META}namespace": namespace,
            f"{META}endpointslice_name": metadata["name"],
            f"{META}endpointslice_address_type": endpoint_slice.get("addressType", ""),
            **_object_meta(f"{META}endpointslice", endpoint_slice),
        }
        service_name = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
        service = services_by_key.get((namespace, service_name or ""))
        if service is not None:
            common[f"{META}service_name"] = service["metadata"]["name"]
            common.update(_object_meta(f"{META}service", service))
        for endpoint in endpoint_slice.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            per_endpoint = {
                f"{META}endpointslice_endpoint_conditions_ready": _bool(conditions.get("ready")),
                f"{META}endpointslice_endpoint_conditions_serving": _bool(
                    conditions.get("serving", conditions.get("ready"))
                ),
                f"{META}endpointslice_endpoint_conditions_terminating": _bool(
                    conditions.get("terminating")
                ),
            }
            if endpoint.get("hostname"):
                per_endpoint[f"{META}endpointslice_endpoint_hostname"] = endpoint["hostname"]
            if endpoint.get("zone"):
                per_endpoint[f"{META}endpointslice_endpoint_zone"] = endpoint["zone"]
            if endpoint.get("nodeName"):
                per_endpoint[f"{META}endpointslice_endpoint_node_name"] = endpoint["nodeName"]
            ref = endpoint.get("targetRef") or {}
            pod = (
                pods_by_key.get((ref.get("namespace", namespace), ref.get("name", "")))
                if ref.get("kind") == "Pod"
                else None
            )
            if pod is not None:
                per_endpoint.update(_pod_labels(pod))
            else:
                per_endpoint[f"{META}endpointslice_address_target_kind"] = ref.get("kind", "")
                per_endpoint[f"{META}endpointslice_address_target_name"] = ref.get("name", "")
            for port in endpoint_slice.get("ports") or []:
                labels = {
                    **common,
                    **per_endpoint,
                    f"{META}endpointslice_port": str(port.get("port", "")),
                    f"{META}endpointslice_port_name": port.get("name", ""),
                    f"{META}endpointslice_port_protocol": port.get("protocol", "TCP"),
                }
                if port.get("appProtocol"):
                    labels[f"{META}endpointslice_port_app_protocol"] = port["appProtocol"]
                if pod is not None:
                    labels.update(_container_labels(pod, port))
                for address in endpoint.get("addresses") or []:
                    groups.append({"targets": [f"{address}:{port.get('port')}"], "labels": labels})
    return groups


class KubeSdBridge:
    """Lists EndpointSlices, Services and Pods every `refresh_seconds`; keeps `path` current."""

    def __init__(
        self,
        api_url: str,
        path: Path,
        refresh_seconds: float = REFRESH_SECONDS,
        token: str = "",
        ca_pem: bytes = b"",
    ) -> None:
        self.api_url, self.path, self.refresh_seconds = api_url, path, refresh_seconds
        # the kubeconfig's cluster CA: the API server is HTTPS
        self._tls = ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else None
        # the kubeconfig user's bearer token, as client-go would send it (never logged)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._task: asyncio.Task[None] | None = None
        self._written: str | None = None

    async def refresh(self, session: aiohttp.ClientSession) -> None:
        lists = await asyncio.gather(
            _list(session, f"{self.api_url}/apis/discovery.k8s.io/v1/endpointslices"),
            _list(session, f"{self.api_url}/api/v1/services"),
            _list(session, f"{self.api_url}/api/v1/pods"),
        )
        self.write(target_groups(*lists))

    def write(self, groups: list[TargetGroup]) -> None:
        text = json.dumps(groups, indent=1, sort_keys=True)
        if text == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(text)
        scratch.replace(self.path)  # one rename: Prometheus never reads half a file
        self._written = text

    async def start(self) -> None:
        """The first refresh before returning (Prometheus starts with the file complete)."""
        self.write([])
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        connector = aiohttp.TCPConnector(ssl=self._tls) if self._tls is not None else None
        async with aiohttp.ClientSession(
            timeout=timeout, headers=self._headers, connector=connector
        ) as session:
            await self.refresh(session)
        self._task = asyncio.create_task(self._run(), name="kubernetes-sd bridge")

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        connector = aiohttp.TCPConnector(ssl=self._tls) if self._tls is not None else None
        async with aiohttp.ClientSession(
            timeout=timeout, headers=self._headers, connector=connector
        ) as session:
            while True:
                await asyncio.sleep(self.refresh_seconds)
                try:
                    await self.refresh(session)
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
                    # Prometheus keeps the last targets, as it does when its watch breaks.
                    # %s, not %r: an aiohttp error's repr can hold the request headers
                    log.warning("kubernetes_sd bridge: list failed: %s", error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def _list(session: aiohttp.ClientSession, url: str) -> list[KubeObject]:
    async with session.get(url) as response:
        if response.status != 200:
            raise ValueError(f"GET {url}: HTTP {response.status}")
        body: Mapping[str, Any] = await response.json(content_type=None)
    items: list[KubeObject] = list(body.get("items") or [])
    return items
