"""A pod reaches the API server as on a cluster: the Python client's
`config.load_incluster_config()` unchanged (KUBERNETES_SERVICE_HOST/PORT, the projected
`kube-api-access-*` volume's token and ca.crt), over TLS verified against the sandbox's
CA, through the `kubernetes` Service's ClusterIP that kube-proxy DNATs to the API server.

The tokens are the API server's own (TokenRequest, bound to the pod): the pod's client
authenticates with them, and asks the API who it is (SelfSubjectReview)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sandbox.kube.discovery import SERVER_VERSION
from sandbox.kube.podlogs import pod_dir
from tests.sandbox.cluster_harness import SandboxHarness, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pod roots and kube-proxy need root")

IMAGE = "ghcr.io/harmonyflow/resilience:0.1.0"
SA = "/var/run/secrets/kubernetes.io/serviceaccount"


def run_pod(sandbox: SandboxHarness, name: str, spec: dict[str, Any]) -> tuple[str, str, str]:
    """Create the pod in a new namespace; (phase once finished, logs, namespace)."""
    namespace = sandbox.new_namespace()
    api = client.CoreV1Api(sandbox.api_client())
    api.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})

    def finished() -> str:
        phase = str(api.read_namespaced_pod(name, namespace).status.phase)
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = wait_for(finished, 90, f"pod {name} to finish")
    return phase, sandbox.kubectl("logs", "-n", namespace, name).stdout, namespace


IN_CLUSTER = f"""
import os
from kubernetes import client, config
config.load_incluster_config()
print(client.VersionApi().get_code().git_version)
print(client.Configuration.get_default_copy().host)
print(open("{SA}/namespace").read())
user = client.AuthenticationV1Api().create_self_subject_review({{}}).status.user_info
print(user.username, *user.extra["authentication.kubernetes.io/pod-uid"])
"""


def test_the_python_clients_in_cluster_config_works_unchanged(sandbox: SandboxHarness) -> None:
    container = {"name": "client", "image": IMAGE, "command": ["python", "-c", IN_CLUSTER]}
    phase, logs, namespace = run_pod(
        sandbox, "in-cluster", {"containers": [container], "restartPolicy": "Never"}
    )
    cluster_ip = sandbox.plane.kubernetes_api.cluster_ip
    uid = client.CoreV1Api(sandbox.api_client()).read_namespaced_pod("in-cluster", namespace)
    assert (phase, logs) == (
        "Succeeded",
        f"{SERVER_VERSION['gitVersion']}\nhttps://{cluster_ip}:443\n{namespace}\n"
        f"system:serviceaccount:{namespace}:default {uid.metadata.uid}\n",
    )


def test_a_wrong_ca_is_refused(sandbox: SandboxHarness) -> None:
    """The client verifies: with another CA the same call fails the TLS handshake."""
    code = IN_CLUSTER.replace(
        "config.load_incluster_config()",
        "config.load_incluster_config(); "
        "c = client.Configuration.get_default_copy(); c.ssl_ca_cert = '/etc/ssl/certs/"
        "ca-certificates.crt'; c.retries = 0; client.Configuration.set_default(c)",
    )
    container = {"name": "client", "image": IMAGE, "command": ["python", "-c", code]}
    phase, logs, _ = run_pod(
        sandbox, "wrong-ca", {"containers": [container], "restartPolicy": "Never"}
    )
    assert phase == "Failed"
    assert "CERTIFICATE_VERIFY_FAILED" in logs


def test_the_kubelet_refreshes_the_token_before_it_expires(sandbox: SandboxHarness) -> None:
    """A token of 2 s is replaced after 1.6 s (80 %): the file changes under the process."""
    volume = {
        "name": "short",
        "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 2}}]},
    }
    code = (
        "import time, pathlib; f = pathlib.Path('/var/run/short/t'); first = f.read_text(); "
        "deadline = time.monotonic() + 20\n"
        "while f.read_text() == first and time.monotonic() < deadline: time.sleep(0.1)\n"
        "print(first != f.read_text())"
    )
    container = {
        "name": "reader",
        "image": IMAGE,
        "command": ["python", "-c", code],
        "volumeMounts": [{"name": "short", "mountPath": "/var/run/short"}],
    }
    spec = {"containers": [container], "volumes": [volume], "restartPolicy": "Never"}
    phase, logs, _ = run_pod(sandbox, "refresh", spec)
    assert (phase, logs) == ("Succeeded", "True\n")


def test_the_scheduled_game_days_script_gets_past_the_api_address(
    sandbox: SandboxHarness,
) -> None:
    """deploy/gameday's container (its command, read-only root, /tmp and /reports volumes):
    KUBERNETES_SERVICE_HOST/PORT are there, the kubeconfig is written to /tmp, and the script
    stops at the first thing this pod lacks, the plan (`set -u`)."""
    container = {
        "name": "gameday",
        "image": IMAGE,
        "command": ["/app/deploy/gameday/in-cluster.sh"],
        "securityContext": {"readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "reports", "mountPath": "/reports"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    spec = {
        "containers": [container],
        "volumes": [{"name": "reports", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        "restartPolicy": "Never",
    }
    host_kubeconfig = Path("/tmp/kubeconfig")
    before = host_kubeconfig.stat().st_mtime_ns if host_kubeconfig.exists() else None
    phase, logs, namespace = run_pod(sandbox, "gameday", spec)
    assert phase == "Failed"
    assert logs.endswith(": PLAN: parameter not set\n"), logs
    uid = client.CoreV1Api(sandbox.api_client()).read_namespaced_pod("gameday", namespace)
    tmp = pod_dir(sandbox.directory, namespace, "gameday", uid.metadata.uid)
    kubeconfig = (tmp / "kubernetes.io~empty-dir" / "tmp" / "kubeconfig").read_text()
    cluster_ip = sandbox.plane.kubernetes_api.cluster_ip
    assert f"server: https://{cluster_ip}:443" in kubeconfig
    assert f"certificate-authority: {SA}/ca.crt" in kubeconfig
    after = host_kubeconfig.stat().st_mtime_ns if host_kubeconfig.exists() else None
    assert after == before  # the emptyDir's /tmp, not the host's
