"""The kubelet: pods as processes, probes, volumes, DNS, status."""
