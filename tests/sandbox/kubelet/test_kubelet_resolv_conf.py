"""Pods resolve through the cluster DNS: a resolv.conf per pod, bind-mounted at /etc/resolv.conf
in a mount namespace of the container's own, never touching the host's file."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox import processes
from sandbox.images.registry import IMAGES, ImageRegistry, ImageSpec
from sandbox.infra.clusterdns import ClusterDns
from sandbox.infra.supervisor import Endpoint
from sandbox.kube.kubelet.dns import resolv_conf_path
from sandbox.kube.kubelet.runtime import ContainerStartError, start_process
from sandbox.kube.podlogs import log_file, render_records
from sandbox.processes import RESOLV_CONF
from tests.sandbox.kubelet.kubelet_harness import FAST, NAMESPACE, Cluster, run_cluster, wait_for

TEST_DNS = "127.0.9.53"  # a test address: never the sandbox's 127.0.3.53
DB = "harmonyflow-db.c9akciq32.us-west-2.rds.amazonaws.com"
PROBE = "sandbox.local/dns-probe:latest"
PROBE_IMAGE = ImageSpec(
    PROBE, "prints its resolv.conf and resolves $LOOKUP", "tests.sandbox.kubelet.dns_probe_app"
)
READ_RESOLV_CONF = "import sys; sys.stdout.write(open('/etc/resolv.conf').read())"


def run(argv: list[str], tmp_path: Path, resolv_conf: Path | None) -> tuple[int, str]:
    async def main() -> tuple[int, str]:
        process = await start_process(
            argv,
            {"PATH": "/usr/bin:/bin"},
            tmp_path / "logs" / "0.log",
            tmp_path / "pids",
            "containerd://x",
            lambda: datetime.now(UTC),
            resolv_conf=resolv_conf,
        )
        code = await asyncio.wait_for(process.wait(), 10)
        lines = (tmp_path / "logs" / "0.log").read_text().splitlines()
        return code, render_records(lines, timestamps=False)

    return asyncio.run(main())


def test_the_container_sees_its_resolv_conf_and_the_host_keeps_its_own(tmp_path: Path) -> None:
    host_before = RESOLV_CONF.read_text()
    mine = tmp_path / "etc-resolv.conf"
    mine.write_text("nameserver 127.0.9.53\noptions ndots:5\n")
    code, output = run([sys.executable, "-c", READ_RESOLV_CONF], tmp_path, mine)
    assert code == 0
    assert output == "nameserver 127.0.9.53\noptions ndots:5\n"
    assert RESOLV_CONF.read_text() == host_before  # the mount stayed in the container
    assert "127.0.9.53" not in Path("/proc/self/mounts").read_text()


def test_a_child_of_the_container_sees_it_too(tmp_path: Path) -> None:
    mine = tmp_path / "etc-resolv.conf"
    mine.write_text("nameserver 127.0.9.54\n")
    code, output = run(["/bin/sh", "-c", "sh -c 'cat /etc/resolv.conf'"], tmp_path, mine)
    assert (code, output) == (0, "nameserver 127.0.9.54\n")


def test_without_a_resolv_conf_the_container_sees_the_hosts(tmp_path: Path) -> None:
    code, output = run([sys.executable, "-c", READ_RESOLV_CONF], tmp_path, None)
    assert (code, output) == (0, RESOLV_CONF.read_text())


def test_a_mount_that_fails_is_a_start_error_that_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-resolv.conf"
    with pytest.raises(ContainerStartError) as caught:
        run([sys.executable, "-c", "print('ran')"], tmp_path, missing)
    message = str(caught.value)
    assert message.startswith(f'error mounting "{missing}" to rootfs at "/etc/resolv.conf"')
    assert message.endswith("bind mount: No such file or directory")
    assert list((tmp_path / "pids").iterdir()) == []  # nothing started, nothing recorded
    assert not (tmp_path / "logs" / "0.log").exists() or "ran" not in render_records(
        (tmp_path / "logs" / "0.log").read_text().splitlines(), timestamps=False
    )


# ---- through the kubelet, with a cluster DNS on a test address ----


def registry() -> ImageRegistry:
    return ImageRegistry([*IMAGES, PROBE_IMAGE])


def probe_output(cluster: Cluster, pod: str) -> str:
    found = cluster.pod(pod) or {}
    uid = found.get("metadata", {}).get("uid", "")
    path = log_file(cluster.state_dir, NAMESPACE, pod, uid, "probe", 0)
    if not path.exists():
        return ""
    return render_records(path.read_text().splitlines(), timestamps=False)


def phase(cluster: Cluster, pod: str) -> str:
    return str(((cluster.pod(pod) or {}).get("status") or {}).get("phase", ""))


def test_a_pod_resolves_a_registered_name_through_the_cluster_dns(tmp_path: Path) -> None:
    settings = dataclasses.replace(FAST, cluster_dns=(TEST_DNS,))

    async def body(cluster: Cluster) -> None:
        dns = ClusterDns(Endpoint(TEST_DNS, 53))
        await dns.start()
        try:
            dns.set(DB, ["127.0.3.10"])
            cluster.create_pod(
                "resolver",
                {"name": "probe", "image": PROBE, "env": [{"name": "LOOKUP", "value": DB}]},
                restartPolicy="Never",
            )
            await wait_for(lambda: phase(cluster, "resolver") == "Succeeded", 20, "probe done")
            output = probe_output(cluster, "resolver")
            uid = (cluster.pod("resolver") or {})["metadata"]["uid"]
        finally:
            await dns.stop()
        assert output.splitlines() == [
            "RESOLV search default.svc.cluster.local svc.cluster.local cluster.local"
            f"|nameserver {TEST_DNS}|options ndots:5|",
            "ADDR 127.0.3.10",
        ]
        assert dns.queries(DB) >= 1
        written = resolv_conf_path(cluster.state_dir, NAMESPACE, "resolver", uid)
        assert f"nameserver {TEST_DNS}\n" in written.read_text()

    host_before = RESOLV_CONF.read_text()
    run_cluster(tmp_path, body, settings=settings, images=registry())
    assert RESOLV_CONF.read_text() == host_before


def test_a_default_dns_policy_pod_keeps_the_hosts_resolv_conf(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod(
            "hosty", {"name": "probe", "image": PROBE}, restartPolicy="Never", dnsPolicy="Default"
        )
        await wait_for(lambda: phase(cluster, "hosty") == "Succeeded", 20, "probe done")
        expected = "RESOLV " + RESOLV_CONF.read_text().replace("\n", "|")
        assert probe_output(cluster, "hosty").splitlines() == [expected]

    run_cluster(tmp_path, body, images=registry())


def test_a_host_without_etc_resolv_conf_fails_the_container_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod with the host's resolver would pass every DNS test silently: it must not start."""
    monkeypatch.setattr(processes, "RESOLV_CONF", tmp_path / "etc" / "resolv.conf")

    async def body(cluster: Cluster) -> None:
        cluster.create_pod("broken", {"name": "probe", "image": PROBE}, restartPolicy="Never")
        await wait_for(lambda: phase(cluster, "broken") == "Failed", 20, "start failed")
        terminated = cluster.container_status("broken")["state"]["terminated"]
        assert terminated["reason"] == "StartError"
        message = terminated["message"]
        assert message.startswith('failed to create containerd task: error mounting "')
        assert f'to rootfs at "{tmp_path}/etc/resolv.conf"' in message
        assert message.endswith("No such file or directory")
        assert probe_output(cluster, "broken") == ""

    broken = dataclasses.replace(FAST, cluster_dns=(TEST_DNS,))
    run_cluster(tmp_path, body, settings=broken, images=registry())
