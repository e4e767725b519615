"""The live tests' one harness: a whole sandbox started the way users start it.

Built on the library's starter (`resilience.targets.sandbox`: `sandbox_up` runs
`resilience sandbox up` and reads `sandbox env`, `sandbox_down` stops it), the same the
suites' default target uses. `started` is what every live fixture yields from (the
`live`, `chaos_sandbox`, `live_sandbox`, `full_sandbox`, `twin_sandbox` and game-day
`sandbox` fixtures), so a live test meets one `LiveSandbox` whichever directory it is in.
Everything reaches the sandbox through its kubeconfig, its ingress URL and its AWS
endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from resilience.chaos.probes import whole
from resilience.targets.live import terminating_pods
from resilience.targets.sandbox import SandboxSession, sandbox_down, sandbox_up
from tests.aws.clients import boto
from tests.cli import run_kubectl
from tests.sandbox.cluster_harness import wait_for
from tests.sandbox.live.traffic import request

NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"
# A whole sandbox starts in about a minute; with RabbitMQ and monitoring in more.
UP_TIMEOUT_SECONDS = 300.0
DOWN_TIMEOUT_SECONDS = 300.0
# Node lifecycle shortened as an operator would for a test cluster, so that a lost zone
# is noticed and evicted in seconds (see tests/sandbox/live/test_sandbox_aws.py).
FAST_NODE_LIFECYCLE_FLAGS = (
    "--node-monitor-grace-period",
    "20",
    "--default-unreachable-toleration-seconds",
    "10",
)


@dataclass(frozen=True)
class LiveSandbox:
    """A running sandbox (its state directory and exports) and a client of its API."""

    session: SandboxSession
    api: client.ApiClient

    @property
    def state(self) -> Path:
        return self.session.state_dir

    @property
    def exports(self) -> dict[str, str]:
        return dict(self.session.exports)

    @property
    def kubeconfig(self) -> Path:
        return self.session.kubeconfig

    @property
    def ingress(self) -> str:
        return self.session.ingress_url

    @property
    def ws_url(self) -> str:
        return self.ingress.replace("http://", "ws://") + "/ws"

    def env(self) -> dict[str, str]:
        """The test's environment pointed at this sandbox (and no other): kubectl and
        `resilience` find it, kubectl caches discovery inside it."""
        return {
            **os.environ,
            "HARMONYFLOW_SANDBOX_DIR": str(self.state),
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.state / "kubecache"),
        }

    def kubectl(self, *args: str, timeout: float = 180) -> str:
        return run_kubectl(*args, env=self.env(), timeout=timeout).stdout

    def set_image(self, tag: str) -> None:
        self.kubectl(
            "set",
            "image",
            f"deploy/{DEPLOYMENT}",
            "-n",
            NAMESPACE,
            f"{DEPLOYMENT}=ghcr.io/harmonyflow/session-state:{tag}",
        )
        self.kubectl("rollout", "status", f"deploy/{DEPLOYMENT}", "-n", NAMESPACE, "--timeout=180s")
        # `rollout status` returns while the old pods still shut down
        wait_for(
            lambda: only_pods_of(self.pods(), f"ghcr.io/harmonyflow/session-state:{tag}"),
            60,
            f"the pods of images other than {tag} to be gone",
        )

    def pods(self) -> list[Any]:
        return (
            client.CoreV1Api(self.api)
            .list_namespaced_pod(NAMESPACE, label_selector=f"app={DEPLOYMENT}")
            .items
        )


def started(state: Path, flags: Sequence[str] = ()) -> Iterator[LiveSandbox]:
    """`sandbox up` with `flags`, yield it, and `sandbox down` whatever happens."""
    try:
        session = sandbox_up(state, flags, timeout=UP_TIMEOUT_SECONDS)
        api = config.new_client_from_config(config_file=str(session.kubeconfig))
        yield LiveSandbox(session, api)
    finally:
        sandbox_down(state, timeout=DOWN_TIMEOUT_SECONDS)


def only_pods_of(pods: list[Any], image: str) -> bool:
    """Every pod runs `image` and none is terminating: the next test cannot meet the
    previous image (a terminating pod still takes requests until nginx drops it)."""
    return not terminating_pods(pods) and all(
        [c.image for c in p.spec.containers] == [image] for p in pods
    )


def create_sessions(live: LiveSandbox, count: int) -> list[str]:
    ids = []
    for index in range(count):
        status, body = request(
            live.ingress,
            "POST",
            "/api/v1/sessions",
            {"owner": "test", "state": {"n": 0, "i": index}},
        )
        assert status == 201, body
        ids.append(body["id"])
    return ids


def cluster_state(live: LiveSandbox) -> dict[str, Any]:
    """What "as it started" means after a fault: nodes, deployments, replicas, the DB,
    the instances."""
    core, apps = client.CoreV1Api(live.api), client.AppsV1Api(live.api)
    nodes = core.list_node().items
    deployments = apps.list_namespaced_deployment(NAMESPACE).items
    [db] = boto(live.exports, "rds").describe_db_instances()["DBInstances"]
    reservations = boto(live.exports, "ec2").describe_instances()["Reservations"]
    return {
        "cordoned": sorted(n.metadata.name for n in nodes if n.spec.unschedulable),
        "nodes_ready": sum(
            any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
            for n in nodes
        ),
        "deployments": {
            d.metadata.name: (d.spec.replicas, d.spec.template.spec.containers[0].image)
            for d in deployments
        },
        "db": db["DBInstanceStatus"],
        "instances": sorted({i["State"]["Name"] for r in reservations for i in r["Instances"]}),
    }


def all_whole(live: LiveSandbox) -> bool:
    """Every Deployment of the namespace has all its replicas updated and available."""
    deployments = client.AppsV1Api(live.api).list_namespaced_deployment(NAMESPACE).items
    return all(whole(d) for d in deployments)


def zone_cordoned(live: LiveSandbox, zone: str) -> bool:
    """Every node of `zone` is cordoned (an AZ drain holds)."""
    nodes = (
        client.CoreV1Api(live.api)
        .list_node(label_selector=f"topology.kubernetes.io/zone={zone}")
        .items
    )
    return bool(nodes) and all(n.spec.unschedulable for n in nodes)
