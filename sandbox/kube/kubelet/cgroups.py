"""Each pod's processes in a cgroup v2 of their own, as runc puts a pod's containers.

Why the sandbox needs it: its pods share the host's network namespace, and a
packet a pod sends leaves from 127.0.0.1 like anyone else's. The cgroup is what
still says whose packet it is: nftables matches `socket cgroupv2` on the sending
socket, so the pod network (`sandbox/cni/`) can give a pod's connections its pod
IP, enforce NetworkPolicies and apply Chaos Mesh faults to that pod alone.

Layout: `<cgroup2 mount>/harmonyflow/<sandbox id>/pod<uid>`, one sandbox id per
state directory, so two sandboxes on one machine never share a cgroup. A
container process joins its pod's cgroup before exec (`ContainerSetup`), an exec
joins the container's (`ExecSetup`). Removing a pod writes `cgroup.kill`
(every process of the pod dies, however it forked) and then removes the
directory, as the kubelet's pod cleanup does.

On a host without a writable cgroup2 hierarchy (not root, or no cgroup2 mount)
`PodCgroups.discover` answers None: pods run as before, and what needs pod
identity on the wire (NetworkPolicy, NetworkChaos) says it is unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SYSFS_CGROUP = Path("/sys/fs/cgroup")  # what nft resolves a `socket cgroupv2` path under
PARENT = "harmonyflow"
REMOVE_TIMEOUT_SECONDS = 5.0


def cgroup2_mount(mountinfo: str) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo's text.

    >>> cgroup2_mount("35 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\\n")
    PosixPath('/sys/fs/cgroup/unified')
    >>> cgroup2_mount("25 1 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw\\n") is None
    True
    """
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        filesystem = line.split(" - ", 1)[1].split()[0]
        if filesystem == "cgroup2":
            return Path(fields[4])
    return None


def sandbox_id(state_dir: Path) -> str:
    """A short name for one sandbox's state directory (stable across restarts)."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PodCgroups:
    """The cgroup directories of one sandbox's pods."""

    mount: Path  # the cgroup2 mount
    root: Path  # <mount>/harmonyflow/<sandbox id>

    @classmethod
    def discover(cls, state_dir: Path) -> PodCgroups | None:
        """This sandbox's cgroups (made with the first pod); None when this host cannot
        have them (no cgroup2 mount, or not writable: not root)."""
        try:
            mount = cgroup2_mount(Path("/proc/self/mountinfo").read_text(encoding="utf-8"))
        except OSError:
            return None
        if mount is None or not os.access(mount, os.W_OK):
            log.info("pods run without cgroups: no NetworkPolicy, no NetworkChaos")
            return None
        return cls(mount, mount / PARENT / sandbox_id(state_dir))

    def pod_dir(self, uid: str) -> Path:
        return self.root / f"pod{uid}"

    def procs(self, uid: str) -> Path:
        """The file a process writes "0" to, to join the pod's cgroup."""
        return self.pod_dir(uid) / "cgroup.procs"

    def nft_path(self, uid: str) -> str:
        """The pod's cgroup as nft's `socket cgroupv2` takes it (relative to /sys/fs/cgroup)."""
        return str(self.pod_dir(uid).relative_to(SYSFS_CGROUP))

    def level(self, uid: str) -> int:
        """The pod cgroup's depth below the cgroup2 root (nft's `level`)."""
        return len(self.pod_dir(uid).relative_to(self.mount).parts)

    def create(self, uid: str) -> Path:
        path = self.pod_dir(uid)
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def remove(self, uid: str) -> None:
        """Kill whatever still runs in the pod's cgroup, then remove it (bounded)."""
        await remove_cgroup(self.pod_dir(uid))

    async def remove_all(self) -> None:
        """Every pod cgroup of this sandbox, then its own directory (sandbox stop)."""
        for path in self.pod_dirs():
            await remove_cgroup(path)
        for directory in (self.root, self.root.parent):  # the parent once no sandbox uses it
            with contextlib.suppress(OSError):
                directory.rmdir()

    def pod_dirs(self) -> list[Path]:
        try:
            return sorted(p for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []


async def remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1", encoding="ascii")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REMOVE_TIMEOUT_SECONDS
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if loop.time() >= deadline:
                log.warning("cgroup %s not removed: %s", path, error)
                return
        await asyncio.sleep(0.05)


def remove_all_now(state_dir: Path) -> int:
    """Synchronously kill and remove a crashed sandbox's cgroups; how many were left."""
    cgroups = PodCgroups.discover(state_dir)
    if cgroups is None:
        return 0
    left = cgroups.pod_dirs()
    for path in left:
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1", encoding="ascii")
    for path in left:
        for _ in range(100):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
    for directory in (cgroups.root, cgroups.root.parent):
        with contextlib.suppress(OSError):
            directory.rmdir()
    return len(left)
