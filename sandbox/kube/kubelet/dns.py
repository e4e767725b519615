"""A pod's /etc/resolv.conf, as the kubelet composes it (pkg/kubelet/network/dns/dns.go).

On EKS a pod resolves the RDS and ElastiCache endpoints through CoreDNS
because the kubelet hands the runtime a DNS config naming the cluster DNS,
and containerd writes it to a file bind-mounted at /etc/resolv.conf. The
sandbox does the same (see `sandbox.processes.bind_resolv_conf`), so a pod
resolves through the sandbox's cluster DNS and never through the host's
resolver, and `ndots:5` sends an RDS name through the search list first, as it
does on a node.

The policy follows upstream: ClusterFirst (the default) and
ClusterFirstWithHostNet use the cluster DNS; ClusterFirst on the host network
and Default inherit the node's file (None here: nothing is mounted); None
starts empty. `dnsConfig` is then appended: nameservers and searches with
duplicates dropped, options merged by name (the pod's win), and the result cut
to the resolver's limits as `formDNSConfigFitsLimits` cuts it. Two differences:
the node's own search domains are not appended to a ClusterFirst pod's list
(the sandbox host's are not a node's), and `dnsConfig` of a Default pod is not
applied (the host's file is inherited as it is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.kube.podlogs import pod_dir

CLUSTER_DOMAIN = "cluster.local"
DEFAULT_OPTIONS = ("ndots:5",)  # upstream defaultDNSOptions
MAX_NAMESERVERS = 3  # validation.MaxDNSNameservers: glibc reads three
MAX_SEARCH_PATHS = 32  # validation.MaxDNSSearchPaths (ExpandedDNSConfig, GA in 1.28)
MAX_SEARCH_LIST_CHARS = 2048  # validation.MaxDNSSearchListChars
MAX_SEARCH_DOMAIN_CHARS = 253  # DNS1123SubdomainMaxLength: glibc 2.28 aborts on longer ones
RESOLV_CONF_FILE = "etc-resolv.conf"


@dataclass(frozen=True)
class DnsConfig:
    """What the kubelet passes the runtime (runtimeapi.DNSConfig)."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def dns_type(pod_spec: Mapping[str, Any]) -> str:
    """`cluster`, `host` or `none`, as upstream getPodDNSType (an unknown policy is cluster)."""
    policy = pod_spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "Default" or (policy == "ClusterFirst" and pod_spec.get("hostNetwork")):
        return "host"
    return "cluster"


def pod_dns_config(
    pod_spec: Mapping[str, Any],
    namespace: str,
    cluster_dns: Sequence[str],
    cluster_domain: str = CLUSTER_DOMAIN,
) -> DnsConfig | None:
    """The pod's DNS config; None when it inherits the node's resolv.conf."""
    kind = dns_type(pod_spec)
    if kind == "cluster" and not cluster_dns:
        kind = "host"  # upstream: no clusterDNS configured, fall back to Default
    if kind == "host":
        return None
    base = DnsConfig()
    if kind == "cluster":
        domain = cluster_domain.rstrip(".")
        searches = (f"{namespace}.svc.{domain}", f"svc.{domain}", domain) if domain else ()
        base = DnsConfig(tuple(cluster_dns), searches, DEFAULT_OPTIONS)
    extra = pod_spec.get("dnsConfig")
    merged = append_dns_config(base, extra) if extra else base
    return fit_limits(merged)


def append_dns_config(base: DnsConfig, extra: Mapping[str, Any]) -> DnsConfig:
    """upstream appendDNSConfig: append, drop duplicates, let the pod's options win."""
    return DnsConfig(
        _unique([*base.servers, *(extra.get("nameservers") or [])]),
        _unique([*base.searches, *(extra.get("searches") or [])]),
        merge_options(base.options, extra.get("options") or []),
    )


def merge_options(
    existing: Iterable[str], pod_options: Iterable[Mapping[str, Any]]
) -> tuple[str, ...]:
    """`ndots:5` + `{name: ndots, value: "2"}` -> `ndots:2`; one without a value stays bare."""
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    for pod_option in pod_options:
        given = pod_option.get("value")
        merged[str(pod_option["name"])] = "" if given is None else str(given)
    return tuple(f"{name}:{value}" if value else name for name, value in merged.items())


def fit_limits(config: DnsConfig) -> DnsConfig:
    """upstream formDNSConfigFitsLimits (the kubelet also records a DNSConfigForming event)."""
    searches = list(config.searches[:MAX_SEARCH_PATHS])
    searches = [s for s in searches if len(s) <= MAX_SEARCH_DOMAIN_CHARS]
    while searches and len(" ".join(searches)) > MAX_SEARCH_LIST_CHARS:
        searches.pop()  # upstream cuts from the end until the line fits
    return DnsConfig(config.servers[:MAX_NAMESERVERS], tuple(searches), config.options)


def format_resolv_conf(config: DnsConfig) -> str:
    """The file as containerd writes it (parseDNSOptions): search, nameserver(s), options."""
    lines = []
    if config.searches:
        lines.append("search " + " ".join(config.searches))
    lines.extend(f"nameserver {server}" for server in config.servers)
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "".join(f"{line}\n" for line in lines)


def render_resolv_conf(
    pod_spec: Mapping[str, Any],
    namespace: str,
    cluster_dns: Sequence[str],
    cluster_domain: str = CLUSTER_DOMAIN,
) -> str | None:
    """The pod's /etc/resolv.conf, or None when it inherits the host's (nothing to mount)."""
    config = pod_dns_config(pod_spec, namespace, cluster_dns, cluster_domain)
    return None if config is None else format_resolv_conf(config)


def resolv_conf_path(root: Path, namespace: str, pod: str, uid: str) -> Path:
    """Beside the pod's container logs: `<state>/pods/<ns>_<pod>_<uid>/etc-resolv.conf`
    (a container name is a DNS label, so it never has a dot and never collides)."""
    return pod_dir(root, namespace, pod, uid) / RESOLV_CONF_FILE


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(item) for item in items))
