"""The pod network, live: Chaos Mesh faults measured from inside a pod, and nothing left after.

A testapp pod measures the network toward echo servers this test runs on loopback
(`/probe`): round trips over TCP, and datagrams answered over UDP. The measured
effect must be the configured one: added latency within 10 %, a loss ratio
within 5 points over 1,000 datagrams, a partition that drops everything; and
deleting the object must give the old network back, with no rule left once the
sandbox stops.
"""

from __future__ import annotations

import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from sandbox.kube.kubelet.cgroups import sandbox_id
from tests.builders import REPO_ROOT
from tests.cli import run_resilience
from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for
from tests.sandbox.live.pod_probe import probe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables") is None,
    reason="the pod network needs root, nft and iptables",
)
ECHO_HOST = "127.0.9.240"
GROUP, VERSION, PLURAL = "chaos-mesh.org", "v1alpha1", "networkchaos"


class _TcpEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


class _UdpEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[int, int]]:
    tcp = socketserver.ThreadingTCPServer((ECHO_HOST, 0), _TcpEcho)
    tcp.daemon_threads = True
    udp = socketserver.UDPServer((ECHO_HOST, 0), _UdpEcho)
    for server in (tcp, udp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tcp.server_address[1], udp.server_address[1]
    finally:
        for server in (tcp, udp):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxHarness, str]]:
    directory = tmp_path_factory.mktemp("podnet")
    harness = SandboxHarness(directory)
    table = f"hfnet_{sandbox_id(directory)}"
    try:
        apps = client.AppsV1Api(harness.api_client())
        apps.create_namespaced_deployment("default", app_deployment("probe", replicas=1))
        ip = wait_for(lambda: _ready_pod_ip(harness), 60, "the probe pod to be ready")
        yield harness, ip
    finally:
        harness.close()
    listed = subprocess.run(
        ["nft", "list", "table", "inet", table], check=False, capture_output=True
    )
    assert listed.returncode != 0, "the pod network's table outlived the sandbox"


def _ready_pod_ip(harness: SandboxHarness) -> str:
    pods = client.CoreV1Api(harness.api_client()).list_namespaced_pod("default").items
    for pod in pods:
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
            return str(pod.status.pod_ip)
    return ""


def network_chaos(name: str, action: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NetworkChaos",
        "metadata": {"name": name},
        "spec": {
            "action": action,
            "mode": "all",
            "selector": {"namespaces": ["default"], "labelSelectors": {"app": "probe"}},
            "direction": "to",
            "externalTargets": [ECHO_HOST],
            **spec,
        },
    }


def injected(harness: SandboxHarness, name: str, condition: str = "AllInjected") -> bool:
    api = client.CustomObjectsApi(harness.api_client())
    obj = cast(
        dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == condition and c["status"] == "True" for c in conditions)


def with_chaos(harness: SandboxHarness, body: dict[str, Any]) -> Iterator[None]:
    api = client.CustomObjectsApi(harness.api_client())
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    name = body["metadata"]["name"]
    try:
        wait_for(lambda: injected(harness, name), 30, f"{name} to be AllInjected")
        yield
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
        wait_for(
            lambda: (
                name
                not in [
                    o["metadata"]["name"]
                    for o in api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)[
                        "items"
                    ]
                ]
            ),
            30,
            f"{name} to be recovered and gone",
        )


def test_delay_adds_the_configured_latency_to_the_pods_round_trips(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int]
) -> None:
    harness, ip = cluster
    tcp, _ = echo
    before = probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=40)["rtt_ms"]
    for _ in with_chaos(harness, network_chaos("slow", "delay", delay={"latency": "40ms"})):
        during = probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=40)["rtt_ms"]
    after = probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=40)["rtt_ms"]
    assert during - before == pytest.approx(40, rel=0.10), (before, during)
    assert after < before + 4, "the delay outlived its NetworkChaos"


def test_loss_drops_the_configured_share_of_the_pods_packets(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int]
) -> None:
    harness, ip = cluster
    _, udp = echo
    for _ in with_chaos(harness, network_chaos("lossy", "loss", loss={"loss": "20"})):
        result = probe(ip, proto="udp", host=ECHO_HOST, port=udp, count=1000, timeout=2)
    assert 1 - result["received"] / result["sent"] == pytest.approx(0.20, abs=0.05), result
    clean = probe(ip, proto="udp", host=ECHO_HOST, port=udp, count=200, timeout=2)
    assert clean["received"] == clean["sent"]


def test_a_partition_drops_everything_toward_its_target_and_nothing_else(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int]
) -> None:
    harness, ip = cluster
    tcp, udp = echo
    for _ in with_chaos(harness, network_chaos("cut", "partition")):
        connect = probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1, timeout=1)
        datagrams = probe(ip, proto="udp", host=ECHO_HOST, port=udp, count=200, timeout=1)
        # the node still reaches the pod (its /probe answers): only packets to the target drop
    assert connect.get("error") == "TimeoutError", connect
    assert datagrams["received"] == 0, datagrams
    assert probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1)["received"] == 1


def test_the_pods_connections_leave_from_its_pod_ip(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int]
) -> None:
    _, ip = cluster
    seen: list[str] = []
    server = socket.create_server((ECHO_HOST, 0))
    port = server.getsockname()[1]

    def accept() -> None:
        connection, peer = server.accept()
        seen.append(peer[0])
        connection.sendall(b"x")
        connection.recv(1)
        connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        probe(ip, proto="tcp", host=ECHO_HOST, port=port, count=1)
    finally:
        thread.join(5)
        server.close()
    assert seen == [ip]


def test_a_run_killed_with_its_fault_in_force_is_recovered_by_resilience_recover(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int], tmp_path: Path
) -> None:
    """kill -9 of the process that created a NetworkChaos: `resilience recover` deletes the
    object from its journal, the pod network drops its rules, and the pod talks again."""
    harness, ip = cluster
    tcp, _ = echo
    env = {
        **harness.env(),
        "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl"),
        "HARMONYFLOW_NAMESPACE_ALLOWLIST": "default",
    }
    code = (
        "import sys, time\n"
        "from resilience.chaos import chaosmesh\n"
        "chaosmesh.inject_network_fault('killed', 'partition', {'app': 'probe'},"
        f" namespaces=['default'], external_targets=['{ECHO_HOST}'],"
        " configuration={'namespace': 'default', 'max_disrupted_pods': 1})\n"
        "print('injected', flush=True)\n"
        "time.sleep(300)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "injected"
        wait_for(lambda: injected(harness, "killed"), 30, "the partition to be AllInjected")
        cut = probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1, timeout=1)
        assert cut.get("error") == "TimeoutError", cut
    finally:
        run.kill()
        run.wait(10)
    recovered = run_resilience("recover", env=env)
    assert recovered.returncode == 0, recovered.stderr
    assert "NetworkChaos default/killed deleted" in recovered.stdout + recovered.stderr
    table = subprocess.run(
        ["nft", "list", "table", "inet", f"hfnet_{sandbox_id(harness.directory)}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert " drop" not in table.split("chain pod_chaos", 1)[1].split("}", 1)[0]
    assert probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1)["received"] == 1


def test_a_dead_sandboxs_rules_are_removed_before_the_next_apply(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int]
) -> None:
    """A sandbox killed with SIGKILL leaves its table, and its addresses go free at once.
    Its rules must not outlive it into the pods that take them: the next apply of any
    living sandbox removes a table whose owner's lock is free (here: no lock at all)."""
    harness, ip = cluster
    tcp, _ = echo
    dead = "deadbeef0001"
    subprocess.run(
        ["nft", "-f", "-"],
        input=(
            f"table inet hfnet_{dead} {{\n  chain netpolicy {{\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    ip saddr {ip} ip daddr {ECHO_HOST} drop\n  }}\n}}\n"
        ),
        text=True,
        check=True,
        timeout=10,
    )
    try:
        harmed = probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1, timeout=1)
        assert harmed.get("error") == "TimeoutError", harmed  # the dead table does harm
        for _ in with_chaos(harness, network_chaos("nudge", "delay", delay={"latency": "1ms"})):
            pass  # any apply
        tables = subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, check=True
        ).stdout
        assert f"hfnet_{dead}" not in tables
        assert probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1)["received"] == 1
    finally:
        subprocess.run(["nft", "delete", "table", "inet", f"hfnet_{dead}"], check=False)


def _zone_of_pod(harness: SandboxHarness, ip: str) -> str:
    core = client.CoreV1Api(harness.api_client())
    [pod] = [p for p in core.list_namespaced_pod("default").items if p.status.pod_ip == ip]
    node = core.read_node(pod.spec.node_name)
    return str(node.metadata.labels["topology.kubernetes.io/zone"])


def test_a_zone_cut_off_loses_the_rest_both_ways_and_keeps_its_own(
    cluster: tuple[SandboxHarness, str], echo: tuple[int, int]
) -> None:
    """FIS's disrupt-connectivity as the pod network realizes it (sandbox.cni.zones): the
    zone's pod reaches nothing outside its zone, a host inside the zone still, and the
    node's own traffic (this probe's HTTP request) passes; restoring gives it all back."""
    harness, ip = cluster
    tcp, _ = echo
    zone = _zone_of_pod(harness, ip)
    isolation = harness.sandbox.zone_isolation
    harness.on_loop(lambda: isolation.cut(zone, []))
    try:
        wait_for(
            lambda: (
                probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1, timeout=1).get("error")
                == "TimeoutError"
            ),
            30,
            "the zone to be cut off from the echo host",
        )
        harness.on_loop(lambda: isolation.cut(zone, [ECHO_HOST]))  # a host in the zone
        wait_for(
            lambda: probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1).get("received") == 1,
            30,
            "a host inside the zone to be reachable",
        )
        harness.on_loop(lambda: isolation.restore(zone))  # the second cut ends, the first stays
        wait_for(
            lambda: (
                probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1, timeout=1).get("error")
                == "TimeoutError"
            ),
            30,
            "the first cut to stand alone again",
        )
    finally:
        harness.on_loop(lambda: isolation.restore(zone))
        harness.on_loop(lambda: isolation.restore(zone))  # no-op when none is left
    wait_for(
        lambda: probe(ip, proto="tcp", host=ECHO_HOST, port=tcp, count=1).get("received") == 1,
        30,
        "the zone to be reconnected",
    )
