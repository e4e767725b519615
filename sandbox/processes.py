"""Processes the sandbox started, recorded so that nothing outlives `sandbox down`.

A pid alone can be reused by an unrelated process; each record also keeps the
process's start time (field 22 of /proc/<pid>/stat), and only a process whose
pid and start time both match is ever signalled (`resilience/processes.py`, shared
with the load runner and `resilience recover`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from resilience.processes import (
    die_with_parent,
    is_alive,
    kill_group,
    signal_if_same,
    start_time,
    wait_gone,
)
from sandbox import mountns

__all__ = [
    "ContainerSetup",
    "ExecSetup",
    "die_with_parent",
    "forget",
    "is_alive",
    "kill_group",
    "kill_recorded",
    "record",
    "signal_if_same",
    "start_time",
    "wait_gone",
]
RESOLV_CONF = Path("/etc/resolv.conf")


def bind_resolv_conf(source: Path, target: Path = RESOLV_CONF) -> None:
    """In a child before exec: a mount namespace of its own in which `target` shows `source`.

    What containerd does for a pod: the kubelet's resolv.conf is bind-mounted at
    /etc/resolv.conf, so the pod resolves through the cluster DNS while the host
    keeps its own. `/` is made recursively private first, or the bind mount would
    propagate back to the host's namespace (systemd mounts `/` shared). mount(2)
    follows a symlinked target (a systemd-resolved stub), and fails on a missing
    one: then the container does not start, rather than run with the host's resolver.
    Raises OSError saying which step failed.
    """
    mountns.enter_private_namespace(f'error mounting "{source}" to rootfs at "{target}"')
    mountns.bind(source, target)


def join_cgroup(procs: Path) -> None:
    """In a child before exec: move this process into the cgroup whose `cgroup.procs` is given
    (the pod's, see `sandbox/kube/kubelet/cgroups.py`). Raises OSError naming the cgroup."""
    try:
        fd = os.open(procs, os.O_WRONLY)
    except OSError as error:
        raise OSError(error.errno, f"joining cgroup {procs.parent}: {error.strerror}") from None
    try:
        os.write(fd, b"0")
    except OSError as error:
        raise OSError(error.errno, f"joining cgroup {procs.parent}: {error.strerror}") from None
    finally:
        os.close(fd)


def cgroup_procs_of(pid: int) -> Path | None:
    """The `cgroup.procs` of `pid`'s cgroup v2 when it is not the root (an exec joins its
    container's); None when there is none or it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8").splitlines()
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), "/")
    mount = next((line.split()[4] for line in mountinfo if " - cgroup2 " in line), None)
    if path == "/" or mount is None:
        return None
    return Path(mount) / path.lstrip("/") / "cgroup.procs"


class ContainerSetup:
    """The `preexec_fn` of a container: die with the sandbox, join the pod's cgroup, see
    the pod's resolv.conf and volumes (`mounts`, see `sandbox.mountns`; a real-process
    container's own root) in a mount namespace of its own, start in `cwd`, after the
    mounts (in the container's root, perhaps in a volume).

    A `preexec_fn` that raises only tells the parent "Exception occurred in
    preexec_fn."; so the child first writes why to a pipe (closed on exec), and the
    parent reads it with `failure()` to report the start error as containerd would.
    Use as a context manager: the pipe is closed on leaving it.
    """

    def __init__(
        self,
        parent: int,
        resolv_conf: Path | None = None,
        cgroup_procs: Path | None = None,
        mounts: Sequence[mountns.MountStep] = (),
        cwd: Path | None = None,
    ) -> None:
        self._die_with_parent = die_with_parent(parent)
        self._resolv_conf = resolv_conf
        self._cgroup_procs = cgroup_procs
        self._mounts = tuple(mounts)
        self._cwd = cwd
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)

    def __call__(self) -> None:
        self._die_with_parent()
        try:
            if self._cgroup_procs is not None:
                join_cgroup(self._cgroup_procs)
            if self._resolv_conf is not None:
                bind_resolv_conf(self._resolv_conf, RESOLV_CONF)  # read now: tests move it
            elif self._mounts:
                mountns.enter_private_namespace("error setting up the container's mounts")
            mountns.apply(self._mounts)
            if self._cwd is not None:
                _chdir(self._cwd)  # the container's working directory: it may be in a volume
        except OSError as error:
            why = error.strerror or str(error)
            os.write(self._write, why.encode(errors="replace")[:4096])
            raise

    def failure(self) -> str:
        """What the child wrote before it gave up ('' if nothing)."""
        try:
            return os.read(self._read, 4096).decode(errors="replace")
        except BlockingIOError:
            return ""

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ContainerSetup:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _chdir(cwd: Path) -> None:
    """runc's words when the working directory cannot be entered (the mount plan made it
    when missing: there only a file in its place, or an image's missing directory)."""
    try:
        os.chdir(cwd)
    except OSError as error:
        raise OSError(
            error.errno, f'chdir to cwd ("{cwd}") set in config.json failed: {error.strerror}'
        ) from None


def same_mount_namespace(pid: int) -> bool:
    """Whether `pid` sees the mounts this process sees (then exec needs no setns)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


def join_mount_namespace(pid: int) -> None:
    """In a child before exec: enter `pid`'s mount namespace (as `nsenter --mount`).

    setns(CLONE_NEWNS) resets the working directory to the namespace's root, so
    callers chdir afterwards. Raises OSError saying which step failed.
    """
    mountns.join_namespace(pid)


class ExecSetup(ContainerSetup):
    """The `preexec_fn` of an exec: die with the sandbox, in the container's mount
    namespace (when it has its own) and working directory. Why it failed, as
    `ContainerSetup.failure()` says."""

    def __init__(self, parent: int, container_pid: int, cwd: str) -> None:
        super().__init__(parent, cgroup_procs=cgroup_procs_of(container_pid))
        self._pid = container_pid
        self._exec_cwd = cwd
        self._join = not same_mount_namespace(container_pid)

    def __call__(self) -> None:
        self._die_with_parent()
        try:
            if self._cgroup_procs is not None:
                join_cgroup(self._cgroup_procs)
            if self._join:
                join_mount_namespace(self._pid)
            try:  # the very directory, even where a mount covers its path
                os.chdir(f"/proc/{self._pid}/cwd")
            except OSError:
                os.chdir(self._exec_cwd)
        except OSError as error:
            why = error.strerror or str(error)
            os.write(self._write, f"{why}: {error.filename or ''}".encode(errors="replace")[:4096])
            raise


def process_environment(pid: int) -> dict[str, str]:
    """The environment `pid` was started with (/proc/<pid>/environ), i.e. what the
    kubelet computed for the container; raises OSError when the process is gone."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep:
            env[os.fsdecode(name)] = os.fsdecode(value)
    return env


def process_cwd(pid: int) -> str:
    """The working directory of `pid`; raises OSError when the process is gone."""
    return os.readlink(f"/proc/{pid}/cwd")


def record(directory: Path, pid: int, what: str = "") -> Path:
    """`<directory>/<pid>` holding `<start time> <what>`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / str(pid)
    path.write_text(f"{start_time(pid) or ''} {what}".rstrip() + "\n", encoding="utf-8")
    return path


def forget(directory: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / str(pid)).unlink()


def kill_recorded(directory: Path) -> list[int]:
    """SIGKILL every recorded process still alive (its whole group); return their pids."""
    killed: list[int] = []
    if not directory.is_dir():
        return killed
    for entry in directory.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = entry.read_text(encoding="utf-8").split()
        started = fields[0] if fields else None
        if started is not None and is_alive(pid, started):
            kill_group(pid)
            signal_if_same(pid, started, signal.SIGKILL)
            killed.append(pid)
        entry.unlink(missing_ok=True)
    return killed
