"""A container's environment from its pod spec (kubelet `makeEnvironmentVariables`).

Pure: Secrets and ConfigMaps come through a lookup function. Order as
upstream: `envFrom` sources first (with their prefix), then `env`, whose later
entries win; `$(VAR)` in a value expands from the variables defined before it,
then the service variables (`$$` escapes); last, the service variables the
container did not define itself. A missing non-optional source is a
`CreateContainerConfigError`.

Service variables (kubelet_pods.go `getServiceEnvVarMap`, pkg/kubelet/envvars
`FromServices`): the `kubernetes` Service of `default` always gives
`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, `KUBERNETES_SERVICE_PORT_HTTPS`
and the Docker-link `KUBERNETES_PORT*` variables, whatever `enableServiceLinks`
says: in-cluster clients find the API server with them. The other Services of the
pod's namespace, which `enableServiceLinks` (default true) would add upstream, are
left out here (see `master_service_env`).

    >>> resolve_env({"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-y"}]},
    ...             PodFacts("p", "ns", "uid", "node", "127.0.2.5", "127.0.3.1"), no_objects)
    {'A': 'x', 'B': 'x-y'}
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KubeObject = dict[str, Any]
# (resource "secrets" | "configmaps", name) -> the object, or None when absent
ObjectLookup = Callable[[str, str], KubeObject | None]
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvConfigError(Exception):
    """Waiting reason CreateContainerConfigError, e.g. `secret "x" not found`."""


@dataclass(frozen=True)
class PodFacts:
    """The downward-API fields a container may ask for."""

    name: str
    namespace: str
    uid: str
    node_name: str
    pod_ip: str
    host_ip: str
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def no_objects(resource: str, name: str) -> KubeObject | None:
    return None


def resolve_env(
    container: Mapping[str, Any],
    pod: PodFacts,
    lookup: ObjectLookup,
    service_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env: dict[str, str] = {}
    services = service_env or {}
    for source in container.get("envFrom") or []:
        env.update(_from_source(source, lookup))
    for var in container.get("env") or []:
        value = _value_of(var, pod, lookup, ChainMap(env, dict(services)))
        if value is not None:
            env[var["name"]] = value
    return {**env, **{name: v for name, v in services.items() if name not in env}}


MASTER_SERVICE = ("default", "kubernetes")  # kubelet_pods.go masterServices


def master_service_env(service: Mapping[str, Any] | None) -> dict[str, str]:
    """The variables of the `kubernetes` Service, every container's (none while it is missing).

    Upstream also adds every Service of the pod's namespace when `enableServiceLinks`
    is true; the sandbox does not yet: `locust-master` would give Locust's workers
    `LOCUST_MASTER_PORT=tcp://...`, which Locust reads as its `--master-port`.
    """
    return service_link_env(service) if service is not None else {}


def service_link_env(service: Mapping[str, Any]) -> dict[str, str]:
    """envvars.FromServices for one Service: `<NAME>_SERVICE_HOST`, `_SERVICE_PORT` (the first
    port), `_SERVICE_PORT_<PORT NAME>`, and the Docker-link `<NAME>_PORT*`; none without a
    ClusterIP.

    >>> env = service_link_env({"metadata": {"name": "kubernetes"}, "spec": {
    ...     "clusterIP": "127.0.4.2", "ports": [{"name": "https", "port": 443}]}})
    >>> env["KUBERNETES_SERVICE_PORT_HTTPS"], env["KUBERNETES_PORT_443_TCP"]
    ('443', 'tcp://127.0.4.2:443')
    """
    spec = service.get("spec") or {}
    cluster_ip = str(spec.get("clusterIP") or "")
    ports = spec.get("ports") or []
    if cluster_ip in ("", "None") or not ports:
        return {}
    prefix = str((service.get("metadata") or {}).get("name", "")).replace("-", "_").upper()
    env = {
        f"{prefix}_SERVICE_HOST": cluster_ip,
        f"{prefix}_SERVICE_PORT": str(ports[0].get("port")),
    }
    for port in ports:
        if port.get("name"):
            name = str(port["name"]).replace("-", "_").upper()
            env[f"{prefix}_SERVICE_PORT_{name}"] = str(port.get("port"))
    for index, port in enumerate(ports):
        protocol = str(port.get("protocol") or "TCP")
        number = str(port.get("port"))
        url = f"{protocol.lower()}://{_host_port(cluster_ip, number)}"
        if index == 0:
            env[f"{prefix}_PORT"] = url  # Docker special-cases the first port
        link = f"{prefix}_PORT_{number}_{protocol.upper()}"
        env.update(
            {
                link: url,
                f"{link}_PROTO": protocol.lower(),
                f"{link}_PORT": number,
                f"{link}_ADDR": cluster_ip,
            }
        )
    return env


def _host_port(host: str, port: str) -> str:
    """net.JoinHostPort: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$(VAR)` from env (left as is when undefined); `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def field_value(path: str, pod: PodFacts) -> str:
    """`fieldRef.fieldPath` as the downward API serves it."""
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.podIP": pod.pod_ip,
        "status.podIPs": pod.pod_ip,
        "status.hostIP": pod.host_ip,
        "status.hostIPs": pod.host_ip,
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match is None:
        raise EnvConfigError(f"unsupported fieldPath: {path}")
    values = pod.labels if match.group(1) == "labels" else pod.annotations
    return values.get(match.group(2), "")


def object_data(resource: str, obj: KubeObject) -> dict[str, str]:
    """A Secret's `data` (base64) or a ConfigMap's `data`, as strings."""
    if resource == "secrets":
        decoded = {key: _b64(value) for key, value in (obj.get("data") or {}).items()}
        return {**decoded, **(obj.get("stringData") or {})}
    return {key: str(value) for key, value in (obj.get("data") or {}).items()}


def _from_source(source: Mapping[str, Any], lookup: ObjectLookup) -> dict[str, str]:
    resource, ref = (
        ("secrets", source["secretRef"])
        if "secretRef" in source
        else ("configmaps", source.get("configMapRef") or {})
    )
    obj = lookup(resource, ref.get("name", ""))
    if obj is None:
        if ref.get("optional"):
            return {}
        raise EnvConfigError(f'{_singular(resource)} "{ref.get("name", "")}" not found')
    prefix = source.get("prefix", "")
    return {
        prefix + k: v for k, v in object_data(resource, obj).items() if _ENV_NAME.match(prefix + k)
    }


def _value_of(
    var: Mapping[str, Any], pod: PodFacts, lookup: ObjectLookup, env: Mapping[str, str]
) -> str | None:
    if "valueFrom" not in var:
        return expand(str(var.get("value", "")), env)
    source = var["valueFrom"]
    if "fieldRef" in source:
        return field_value(source["fieldRef"].get("fieldPath", ""), pod)
    for key, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
        if key in source:
            return _key_value(resource, source[key], lookup)
    raise EnvConfigError(f"unsupported valueFrom for {var.get('name')}: {sorted(source)}")


def _key_value(resource: str, ref: Mapping[str, Any], lookup: ObjectLookup) -> str | None:
    obj = lookup(resource, ref.get("name", ""))
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise EnvConfigError(f'{_singular(resource)} "{ref.get("name", "")}" not found')
    data = object_data(resource, obj)
    if ref.get("key") not in data:
        if optional:
            return None
        raise EnvConfigError(
            f"couldn't find key {ref.get('key')} in {_kind(resource)} "
            f"{obj['metadata'].get('namespace', '')}/{ref.get('name', '')}"
        )
    return data[ref["key"]]


def _b64(value: str) -> str:
    try:
        return base64.b64decode(value).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _singular(resource: str) -> str:
    return "secret" if resource == "secrets" else "configmap"


def _kind(resource: str) -> str:
    return "Secret" if resource == "secrets" else "ConfigMap"
