"""A container's mounts, made in its own mount namespace in the child before exec.

What runc does when it sets up a container's rootfs, on the host's rootfs: the
kubelet plans the steps (`sandbox/kube/kubelet/mounts.py`, pure), and the child,
after `unshare(CLONE_NEWNS)` and making `/` recursively private (so that nothing
propagates back to the host), carries them out in order:

- `Tmpfs`: a small tmpfs over a dedicated mount-point directory such as /mnt, in
  which every entry the directory held is bound back (directories and files with
  their submounts, symlinks recreated), so the process sees what it saw before and
  missing mount points can be made without creating anything on the host;
- `MakeMountPoint`: one missing directory (or empty file) of a mount point, made
  only beneath a tmpfs this setup mounted: its parent is checked, symlinks
  resolved, before anything is created, so a symlink can never lead the child to
  create something on the host;
- `Bind`: the volume's directory (or subPath) at its mountPath, then remounted
  read-only when it must be (keeping the flags the source mount had: nosuid, ...).

Every failure raises OSError saying what failed, in runc's words
(`error mounting "<source>" to rootfs at "<target>": ...`), and the process is
not started. Python 3.11 has no os.unshare nor os.mount, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
# statvfs f_flag bits -> the mount flags a read-only remount must keep (they are locked)
_KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
TMPFS_OPTIONS = "size=1m,nr_inodes=4096"  # it holds mount points only

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.unshare.argtypes = [ctypes.c_int]
_LIBC.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_LIBC.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]

EntryKind = Literal["dir", "file", "symlink"]
PointKind = Literal["dir", "file"]


@dataclass(frozen=True)
class Entry:
    """What a directory covered by a `Tmpfs` held: bound (or, a symlink, recreated) back."""

    name: str
    kind: EntryKind
    link: str = ""  # a symlink's target


@dataclass(frozen=True)
class Tmpfs:
    path: Path
    mode: int  # the covered directory's permission bits
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class MakeMountPoint:
    path: Path
    kind: PointKind


@dataclass(frozen=True)
class Bind:
    source: Path
    target: Path
    read_only: bool = False


MountStep = Tmpfs | MakeMountPoint | Bind


def check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> int:
    return int(
        _LIBC.mount(
            None if source is None else os.fsencode(source),
            os.fsencode(target),
            None if fstype is None else fstype.encode(),
            flags,
            None if data is None else ctypes.c_char_p(data.encode()),
        )
    )


def enter_private_namespace(where: str) -> None:
    """A mount namespace of this process's own, from which no mount propagates to the host."""
    check(_LIBC.unshare(CLONE_NEWNS), f"{where}: unshare(CLONE_NEWNS)")
    check(mount(None, "/", None, MS_REC | MS_PRIVATE, None), f"{where}: making / private")


def join_namespace(pid: int) -> None:
    """Enter `pid`'s mount namespace (as `nsenter --mount`); resets the working directory."""
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    try:
        check(_LIBC.setns(fd, CLONE_NEWNS), f"setns into the mount namespace of {pid}")
    finally:
        os.close(fd)


def apply(steps: Sequence[MountStep]) -> None:
    """Carry out the steps in order, in a namespace already private (`enter_private_namespace`)."""
    covered: list[Path] = []
    for step in steps:
        if isinstance(step, Tmpfs):
            _tmpfs(step)
            covered.append(step.path)
        elif isinstance(step, MakeMountPoint):
            _make_mount_point(step, covered)
        else:
            bind(step.source, step.target, step.read_only)


def bind(source: Path, target: Path, read_only: bool = False) -> None:
    where = f'error mounting "{source}" to rootfs at "{target}"'
    flags = MS_BIND | MS_REC
    check(mount(os.fspath(source), os.fspath(target), None, flags, None), f"{where}: bind mount")
    if read_only:
        kept = _kept_flags(target)
        check(
            mount(None, os.fspath(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None),
            f"{where}: remounting read-only",
        )


def _kept_flags(target: Path) -> int:
    flags = os.statvfs(target).f_flag
    return sum(mount_flag for stat_flag, mount_flag in _KEPT_FLAGS if flags & stat_flag)


def _tmpfs(step: Tmpfs) -> None:
    where = f'error mounting "tmpfs" to rootfs at "{step.path}"'
    covered = os.open(step.path, os.O_PATH | os.O_DIRECTORY)  # still reachable once covered
    try:
        options = f"mode={step.mode & 0o7777:o},{TMPFS_OPTIONS}"
        check(
            mount("tmpfs", os.fspath(step.path), "tmpfs", MS_NOSUID | MS_NODEV, options),
            f"{where}: tmpfs",
        )
        for entry in step.entries:
            _restore(entry, step.path, covered, where)
    finally:
        os.close(covered)


def _restore(entry: Entry, directory: Path, covered: int, where: str) -> None:
    """Show `entry` of the covered directory again, at the same name in the tmpfs."""
    if "/" in entry.name or entry.name in ("", ".", ".."):
        raise OSError(0, f"{where}: bad entry name {entry.name!r}")
    placeholder = directory / entry.name
    if entry.kind == "symlink":
        os.symlink(entry.link, placeholder)
        return
    _create(placeholder, "dir" if entry.kind == "dir" else "file")
    check(
        mount(
            f"/proc/self/fd/{covered}/{entry.name}",
            os.fspath(placeholder),
            None,
            MS_BIND | MS_REC,
            None,
        ),
        f"{where}: binding back {entry.name}",
    )


def _make_mount_point(step: MakeMountPoint, covered: Iterable[Path]) -> None:
    where = f"mkdir {step.path}"
    parent = Path(os.path.realpath(step.path.parent))
    if not any(parent == root or root in parent.parents for root in covered):
        raise OSError(0, f"{where}: not beneath a tmpfs of the container (the host is not written)")
    if os.path.lexists(step.path):
        return
    try:
        _create(parent / step.path.name, step.kind)
    except OSError as error:
        raise OSError(error.errno, f"{where}: {error.strerror}") from None


def _create(path: Path, kind: PointKind) -> None:
    if kind == "dir":
        os.mkdir(path, 0o755)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with contextlib.suppress(OSError):
        os.close(fd)
