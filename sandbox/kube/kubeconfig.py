"""The kubeconfig the sandbox writes for its clients (kubectl, the Python client, Chaos Toolkit)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

CONTEXT = "harmonyflow-sandbox"


@dataclass(frozen=True)
class ApiAccess:
    """How to reach the API server as its admin: URL, bearer token, the CA to trust."""

    url: str
    token: str
    ca_pem: bytes


def kubeconfig(access: ApiAccess, namespace: str = "harmonyflow") -> dict[str, object]:
    """One cluster, one context, one user: the API server's admin identity (kubernetes-admin
    in system:masters) by its bearer token (ApiServer.admin_token), over TLS."""
    cluster = {
        "server": access.url,
        "certificate-authority-data": base64.b64encode(access.ca_pem).decode(),
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": {"token": access.token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, access: ApiAccess, namespace: str = "harmonyflow") -> Path:
    """Written 0600 from the start: the file holds a credential."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(access, namespace), sort_keys=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path
