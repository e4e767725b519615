"""The sandbox's pod network: who a packet belongs to, and what may happen to it.

What a CNI plugin and a chaos daemon do on a real node, on loopback: every pod's
processes live in a cgroup of their own, and the pod's outgoing connections leave
from its pod IP (SNAT by cgroup), so a packet names its pod by address as it would
on a real cluster. One nftables table per sandbox then enforces NetworkPolicies
and realizes Chaos Mesh's NetworkChaos (partition in the kernel; delay, loss and
bandwidth by a netem-like userspace worker fed through NFQUEUE, as this kernel has
no netem), and routes connections to Services' ClusterIPs to their endpoints, as
kube-proxy does. See `sandbox/README` and the modules for the details.
"""
