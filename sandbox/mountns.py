"""A container's mounts, made in its own mount namespace in the child before exec.

What runc does when it sets up a container's rootfs: the kubelet plans the steps
(`sandbox/kube/kubelet/mounts.py`, pure), and the child, after
`unshare(CLONE_NEWNS)` and making `/` recursively private (so that nothing
propagates back to the host), carries them out in order:

- `NewRoot`: the container's own root, a tmpfs mounted on an empty directory of the
  sandbox's, in which every top-level entry of the host's `/` is bound back
  (recursive binds, so /proc, /dev, /sys, /usr, /etc ... with their submounts are
  the host's; symlinks such as /bin -> usr/bin recreated), except the entries a
  volume takes the place of. The image has no filesystem of its own: the host's is
  its rootfs, seen through binds, and what the container adds (mount points, its
  working directory) is made in tmpfs, never on the host;
- `Tmpfs`: a small tmpfs over a directory of the new root (/run, /home ...) in
  which every entry the directory held is bound back the same way, so that a
  missing mount point beneath it can be made without writing to the host;
- `MakeMountPoint`: one missing directory (or empty file) of a mount point, made
  only on a tmpfs this setup mounted: its parent is checked (its device must be one
  of those tmpfs, symlinks resolved) before anything is created, so neither a
  symlink nor a bound-back host directory can lead the child to write on the host;
- `Bind`: the volume's directory (or subPath) at its mountPath, then remounted
  read-only when it must be (keeping the flags the source mount had: nosuid, ...);
- `ReadOnlyRoot`: `readOnlyRootFilesystem`: every mount of the new root remounted
  read-only but the volumes and the kernel's filesystems (/proc, /dev, /sys), as
  runc mounts a read-only rootfs and containerd its /etc/resolv.conf;
- `PivotRoot`: pivot_root(2) into the new root and detach the old one (runc's
  `pivotRoot`), so the process, its children and `kubectl exec` (setns) see the
  container's `/`.

Every failure raises OSError saying what failed, in runc's words
(`error mounting "<source>" to rootfs at "<target>": ...`), and the process is
not started. Python 3.11 has no os.unshare, os.mount nor pivot_root, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
from collections.abc import Sequence
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
MNT_DETACH = 0x2
# pivot_root(2) has no libc wrapper: its number per architecture (asm/unistd.h)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
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
# The new root is also the container's writable layer (a file written at `/x`)
ROOT_TMPFS_OPTIONS = "size=64m,nr_inodes=16384"
KERNEL_FILESYSTEMS = ("proc", "dev", "sys")  # left as they are by a read-only root

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.unshare.argtypes = [ctypes.c_int]
_LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
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
class NewRoot:
    """The container's `/`: a tmpfs at `path` with these entries of the host's `/` bound back."""

    path: Path
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


@dataclass(frozen=True)
class ReadOnlyRoot:
    """Every mount beneath `path` read-only, except at or beneath `writable` (volumes)."""

    path: Path
    writable: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PivotRoot:
    path: Path


MountStep = NewRoot | Tmpfs | MakeMountPoint | Bind | ReadOnlyRoot | PivotRoot


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
    ours: set[int] = set()  # the devices of the tmpfs mounted here: mount points go only there
    for step in steps:
        if isinstance(step, NewRoot):
            _new_root(step)
            ours.add(os.stat(step.path).st_dev)
        elif isinstance(step, Tmpfs):
            _tmpfs(step)
            ours.add(os.stat(step.path).st_dev)
        elif isinstance(step, MakeMountPoint):
            _make_mount_point(step, ours)
        elif isinstance(step, Bind):
            bind(step.source, step.target, step.read_only)
        elif isinstance(step, ReadOnlyRoot):
            _read_only_root(step)
        else:
            pivot_root(step.path)


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
    _covering_tmpfs(step.path, step.mode, TMPFS_OPTIONS, step.entries, where)


def _new_root(step: NewRoot) -> None:
    """The tmpfs root with the host's entries bound back. A bound-back entry that holds
    the new root's own directory (the sandbox's state under /tmp, say) would show the root
    again inside itself: that copy is detached."""
    where = f'error mounting "tmpfs" to rootfs at "{step.path}"'
    _covering_tmpfs(step.path, 0o755, ROOT_TMPFS_OPTIONS, step.entries, where, Path("/"))
    for entry in step.entries:
        holder = Path("/") / entry.name
        if entry.kind == "dir" and holder in step.path.parents:
            inner = step.path / step.path.relative_to("/")
            check(
                int(_LIBC.umount2(os.fsencode(inner), MNT_DETACH)),
                f"{where}: detaching the root's copy at {inner}",
            )


def _covering_tmpfs(
    path: Path,
    mode: int,
    options: str,
    entries: Sequence[Entry],
    where: str,
    source: Path | None = None,
) -> None:
    """A tmpfs at `path` holding `entries` of `source` (the covered `path` itself by default)."""
    covered = os.open(source or path, os.O_PATH | os.O_DIRECTORY)  # reachable once covered
    try:
        check(
            mount(
                "tmpfs",
                os.fspath(path),
                "tmpfs",
                MS_NOSUID | MS_NODEV,
                f"mode={mode & 0o7777:o},{options}",
            ),
            f"{where}: tmpfs",
        )
        for entry in entries:
            _restore(entry, path, covered, where)
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


def _make_mount_point(step: MakeMountPoint, ours: set[int]) -> None:
    where = f"mkdir {step.path}"
    parent = Path(os.path.realpath(step.path.parent))
    try:
        device = os.stat(parent).st_dev
    except OSError as error:
        raise OSError(error.errno, f"{where}: {error.strerror}") from None
    if device not in ours:
        raise OSError(0, f"{where}: not beneath a tmpfs of the container (the host is not written)")
    if os.path.lexists(step.path):
        return
    try:
        _create(parent / step.path.name, step.kind)
    except OSError as error:
        raise OSError(error.errno, f"{where}: {error.strerror}") from None


def _read_only_root(step: ReadOnlyRoot) -> None:
    """runc's read-only rootfs: each mount in the new root remounted read-only (a remount
    does not recurse), but the volumes and the kernel's filesystems, and what is beneath."""
    keep = (*step.writable, *(step.path / name for name in KERNEL_FILESYSTEMS))
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        points = [mount_point(line) for line in table]
    for point in points:
        if point != step.path and step.path not in point.parents:
            continue
        if any(point == kept or kept in point.parents for kept in keep):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(point)
        check(
            mount(None, os.fspath(point), None, flags, None),
            f'error mounting "{point}" read-only (readOnlyRootFilesystem)',
        )


_ESCAPE = re.compile(r"\\([0-7]{3})")


def mount_point(line: str) -> Path:
    r"""The mount point of a /proc/self/mountinfo line (field 5, octal escapes decoded).

    >>> mount_point("36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw")
    PosixPath('/mnt/my disk')
    """
    return Path(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]))


def pivot_root(new_root: Path) -> None:
    """Make `new_root` the process's `/`: pivot_root(".", ".") and a lazy unmount of the old
    root stacked beneath (runc's pivotRoot), then `/` as the working directory."""
    where = f"pivot_root {new_root}"
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"{where}: no pivot_root number for {platform.machine()}")
    os.chdir(new_root)
    check(int(_LIBC.syscall(number, b".", b".")), where)
    check(int(_LIBC.umount2(b".", MNT_DETACH)), f"{where}: detaching the old root")
    os.chdir("/")


def _create(path: Path, kind: PointKind) -> None:
    if kind == "dir":
        os.mkdir(path, 0o755)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with contextlib.suppress(OSError):
        os.close(fd)
