"""One kubelet per node: processes, probes, status, logs, usage (see kubelet.py)."""
