"""Pod cgroups: where they live, what nft is told, and that removing one ends its processes."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.kube.kubelet.cgroups import PodCgroups, cgroup2_mount, remove_all_now, sandbox_id
from sandbox.kube.kubelet.runtime import start_process

HYBRID = "35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
UNIFIED = "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n"
V1_ONLY = "36 25 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"


@pytest.mark.parametrize(
    ("mountinfo", "mount"),
    [
        pytest.param(HYBRID, Path("/sys/fs/cgroup/unified"), id="hybrid"),
        pytest.param(UNIFIED, Path("/sys/fs/cgroup"), id="unified"),
        pytest.param(V1_ONLY, None, id="v1-only"),
        pytest.param(V1_ONLY + HYBRID, Path("/sys/fs/cgroup/unified"), id="v1-and-v2"),
    ],
)
def test_the_cgroup2_mount_is_read_from_mountinfo(mountinfo: str, mount: Path | None) -> None:
    assert cgroup2_mount(mountinfo) == mount


@pytest.mark.parametrize(
    ("mount", "nft_path", "level"),
    [
        pytest.param(
            Path("/sys/fs/cgroup/unified"), "unified/harmonyflow/s1/podu1", 3, id="hybrid"
        ),
        pytest.param(Path("/sys/fs/cgroup"), "harmonyflow/s1/podu1", 3, id="unified"),
    ],
)
def test_nft_names_the_pod_cgroup_under_sys_fs_cgroup(
    mount: Path, nft_path: str, level: int
) -> None:
    cgroups = PodCgroups(mount, mount / "harmonyflow" / "s1")
    assert cgroups.nft_path("u1") == nft_path
    assert cgroups.level("u1") == level


def test_each_state_directory_has_its_own_sandbox_id(tmp_path: Path) -> None:
    assert sandbox_id(tmp_path / "a") != sandbox_id(tmp_path / "b")
    assert sandbox_id(tmp_path / "a") == sandbox_id(tmp_path / "x" / ".." / "a")


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever adopted it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0, reason="pod cgroups need root (a writable cgroup2 hierarchy)"
)


@needs_cgroups
def test_a_container_runs_in_its_pods_cgroup_and_removal_ends_its_processes(
    tmp_path: Path,
) -> None:
    cgroups = PodCgroups.discover(tmp_path)
    if cgroups is None:
        pytest.skip("this host has no writable cgroup2 hierarchy")

    async def main() -> tuple[str, str, int]:
        cgroups.create("u1")
        # The container forks a grandchild in a new session: only the cgroup still knows it.
        code = (
            "import os,subprocess,sys,time;"
            "p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)'],"
            "start_new_session=True); print(p.pid, flush=True); time.sleep(60)"
        )
        process = await start_process(
            [sys.executable, "-c", code],
            {"PATH": os.environ["PATH"]},
            tmp_path / "logs" / "0.log",
            tmp_path / "pids",
            "containerd://x",
            lambda: datetime.now(UTC),
            cgroup_procs=cgroups.procs("u1"),
        )
        assert process.pid is not None
        for _ in range(100):
            text = (tmp_path / "logs" / "0.log").read_text() if (tmp_path / "logs").exists() else ""
            if text.strip():
                break
            await asyncio.sleep(0.05)
        grandchild = int(text.split()[-1])
        own = Path(f"/proc/{process.pid}/cgroup").read_text()
        forked = Path(f"/proc/{grandchild}/cgroup").read_text()
        await cgroups.remove("u1")
        code_ = await asyncio.wait_for(process.wait(), 5)
        return own, forked, code_ if running(grandchild) else -1

    own, forked, alive = asyncio.run(main())
    assert f"0::/{cgroups.nft_path('u1').removeprefix('unified/')}" in own
    assert own == forked
    assert alive == -1, "the pod's forked process outlived its cgroup"
    assert not cgroups.pod_dir("u1").exists()
    assert remove_all_now(tmp_path) == 0
    assert not cgroups.root.exists()


@needs_cgroups
def test_a_cgroup_that_cannot_be_joined_stops_the_container_with_the_reason(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        await start_process(
            [sys.executable, "-c", "pass"],
            {"PATH": os.environ["PATH"]},
            tmp_path / "logs" / "0.log",
            tmp_path / "pids",
            "containerd://x",
            lambda: datetime.now(UTC),
            cgroup_procs=tmp_path / "no-such-cgroup" / "cgroup.procs",
        )

    with pytest.raises(OSError, match=r"joining cgroup .*no-such-cgroup"):
        asyncio.run(main())
