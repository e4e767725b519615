"""The kubeconfig the sandbox writes for its clients (kubectl, the Python client, Chaos Toolkit)."""

from __future__ import annotations

from pathlib import Path

import yaml

CONTEXT = "harmonyflow-sandbox"


def kubeconfig(server_url: str, namespace: str = "harmonyflow") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server_url: str, namespace: str = "harmonyflow") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(server_url, namespace), sort_keys=False))
    path.chmod(0o600)
    return path
