"""The sandbox's host processes that NetworkPolicy sees as the pods they are on EKS.

On EKS the cluster DNS is CoreDNS in kube-system and the ingress is the ingress-nginx
controller pod in namespace ingress-nginx, and the seed's policies name them so
(`kubernetes.io/metadata.name: kube-system`, `name: ingress-nginx`). In the sandbox
both are host processes, each with an address of its own: the DNS's listen address,
and nginx's `proxy_bind` (sandbox/infra/nginx_config.py, `INGRESS_POD_ADDRESS`). The
pod network's policy compiler takes each for a pod with upstream's labels, in a
namespace with upstream's labels, so that removing the rule that allows it denies it.

The API does not list them (no kubelet runs them), and their namespaces count for
NetworkPolicy even when the API has none of that name; a namespace the API does have
wins (`PodNetworkController` puts the store's after these).

Prometheus is not among them: it stays a node process, and its scrapes leave from
127.0.0.1, the node, whose traffic is always allowed (as upstream allows the node's,
e.g. the kubelet's probes). Prometheus cannot choose the source of its scrapes, and
a scrape denied by a policy would only hide the pods from the alerts the game day
reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from sandbox.cni.netpolicy import PolicyNamespace, PolicyPod

DNS_NAMESPACE, DNS_POD_NAME = "kube-system", "coredns"
DNS_POD_LABELS = MappingProxyType({"k8s-app": "kube-dns"})
INGRESS_NAMESPACE, INGRESS_POD_NAME = "ingress-nginx", "ingress-nginx-controller"
# the ingress-nginx Helm chart's controller labels, and the label the seed selects
INGRESS_POD_LABELS = MappingProxyType(
    {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/component": "controller",
    }
)
INGRESS_NAMESPACE_LABELS = MappingProxyType({"name": "ingress-nginx"})


@dataclass(frozen=True)
class InfrastructurePeers:
    """What the policy compiler sees beyond the API's pods and namespaces."""

    pods: tuple[PolicyPod, ...] = ()
    namespaces: tuple[PolicyNamespace, ...] = ()


def infrastructure_peers(dns_address: str, ingress_address: str | None) -> InfrastructurePeers:
    """The cluster DNS, and the ingress controller when one runs (`ingress_address`: the
    source of its connections to the pods; None: no ingress).

    >>> peers = infrastructure_peers("127.0.3.53", "127.0.3.60")
    >>> [f"{p.namespace}/{p.name} {p.ip}" for p in peers.pods]
    ['kube-system/coredns 127.0.3.53', 'ingress-nginx/ingress-nginx-controller 127.0.3.60']
    >>> [(n.name, dict(n.labels)) for n in peers.namespaces]
    [('ingress-nginx', {'name': 'ingress-nginx'})]
    """
    dns = PolicyPod(DNS_NAMESPACE, DNS_POD_NAME, dns_address, DNS_POD_LABELS)
    if ingress_address is None:
        return InfrastructurePeers(pods=(dns,))
    ingress = PolicyPod(INGRESS_NAMESPACE, INGRESS_POD_NAME, ingress_address, INGRESS_POD_LABELS)
    return InfrastructurePeers(
        pods=(dns, ingress),
        namespaces=(PolicyNamespace(INGRESS_NAMESPACE, INGRESS_NAMESPACE_LABELS),),
    )
