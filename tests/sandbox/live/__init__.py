"""Whole sandboxes: a control plane with kubelets (SandboxHarness), or the full sandbox."""
