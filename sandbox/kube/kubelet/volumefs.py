"""The I/O beside `volumes.py` and `mounts.py`: volume files under the pod's directory,
mount points the kubelet makes, and the host view the mount planner reads.

Layout, as upstream's /var/lib/kubelet/pods/<uid>/volumes/<plugin>/<name>:
`<state>/pods/<ns>_<pod>_<uid>/kubernetes.io~configmap/<volume>/` beside the
container logs (a plugin name has a dot, a container name never, so they cannot
collide). API-data volumes are written as the AtomicWriter leaves them
(`volumes.layout`), once per set-up; the secret plugin's directory is 0700, so
that only root (the sandbox's and its pods' user) can read a Secret's files. On a
node the Secret volume is a tmpfs; here it is the state directory's disk. Nothing
here logs a file's content.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from sandbox.kube.kubelet.mounts import Create, PathKind, VolumeSource
from sandbox.kube.kubelet.volumes import (
    DATA_DIR_LINK,
    PLUGIN_DIRS,
    MountVolumeError,
    VolumeFile,
    VolumePlan,
    layout,
)
from sandbox.mountns import Entry

EMPTY_DIR_MODE = 0o755  # upstream makes emptyDirs 0777; the sandbox's pods all run as root
SECRET_PLUGIN_MODE = 0o700


def volume_dir(pod_directory: Path, plan: VolumePlan) -> Path:
    return pod_directory / plan.plugin_dir / plan.name


def write_volumes(
    pod_directory: Path, plans: Iterable[VolumePlan], now: datetime
) -> tuple[dict[str, VolumeSource], list[MountVolumeError]]:
    """Write every volume; the sources of those written and the errors of the others."""
    written: dict[str, VolumeSource] = {}
    errors: list[MountVolumeError] = []
    for plan in plans:
        if plan.kind == "persistent-volume":  # the volume's own directory, shared by pods
            directory = Path(plan.host_path)
            if not directory.is_dir():
                errors.append(
                    MountVolumeError(
                        plan.name, f"hostPath type check failed: {directory} is not a directory"
                    )
                )
            else:
                written[plan.name] = VolumeSource(directory, plan.read_only)
            continue
        directory = volume_dir(pod_directory, plan)
        try:
            write_volume(directory, plan, now)
        except OSError as error:
            why = error.strerror or str(error)
            errors.append(
                MountVolumeError(plan.name, f"writing {error.filename or directory}: {why}")
            )
            continue
        written[plan.name] = VolumeSource(directory, plan.read_only)
    return written, errors


def write_volume(directory: Path, plan: VolumePlan, now: datetime) -> None:
    """An emptyDir is made once and kept (its content outlives container restarts); an
    API-data volume is written afresh."""
    if plan.kind == "secret":
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.parent.chmod(SECRET_PLUGIN_MODE)
    if plan.kind == "empty-dir":
        directory.mkdir(mode=EMPTY_DIR_MODE, parents=True, exist_ok=True)
        return
    if directory.is_symlink() or directory.exists():
        _remove(directory)
    directory.mkdir(parents=True)
    written = layout(plan, now)
    _write_files(directory / written.data_dir, written.files)
    for name, target in written.links:
        os.symlink(target, directory / name)


def refresh_volume(directory: Path, plan: VolumePlan, now: datetime) -> None:
    """The AtomicWriter's update, in place (a container's bind of `directory` sees it at
    once): the files in a new timestamped directory, `..data` switched to it by a rename
    (atomic: a reader sees the old files or the new, never a mix), the top-level links
    made or dropped to match, the old directory removed."""
    written = layout(plan, now)
    current = directory / DATA_DIR_LINK
    old = os.readlink(current) if current.is_symlink() else None
    if old == written.data_dir:
        return  # the same moment: already written
    _write_files(directory / written.data_dir, written.files)
    staged = directory / f"{DATA_DIR_LINK}_tmp"
    staged.unlink(missing_ok=True)
    os.symlink(written.data_dir, staged)
    os.rename(staged, current)
    links = dict(written.links)
    for entry in directory.iterdir():
        if entry.name not in links and entry.is_symlink():
            entry.unlink()  # a top-level name the new payload lacks
    for name, target in links.items():
        if not (directory / name).is_symlink():
            os.symlink(target, directory / name)
    if old is not None and old.startswith(".."):
        _remove(directory / old)


def _write_files(data: Path, files: Iterable[VolumeFile]) -> None:
    data.mkdir()
    for file in files:
        path = data / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, file.mode)
        try:
            os.write(fd, file.data)
            os.fchmod(fd, file.mode)  # past the umask, as the AtomicWriter's chmod
        finally:
            os.close(fd)


def remove_volumes(pod_directory: Path) -> None:
    """The pod's volume directories, once the pod is gone (its processes are)."""
    for plugin in set(PLUGIN_DIRS.values()):
        _remove(pod_directory / plugin)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    shutil.rmtree(path)  # never follows symlinks: `..data` and the user-visible links go alone


def prepare(creations: Sequence[Create]) -> None:
    """Make the kubelet's mount points, each only if its parent (symlinks resolved) is within
    the sandbox-owned directory named by the plan; raises OSError naming the path otherwise."""
    for creation in creations:
        under = Path(os.path.realpath(creation.under))
        parent = Path(os.path.realpath(creation.path.parent))
        path = parent / creation.path.name
        if parent != under and under not in parent.parents:
            raise OSError(0, f"mkdir {creation.path}: not within {creation.under}")
        try:
            if creation.kind == "dir":
                os.mkdir(path, 0o755)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        except FileExistsError:
            if path.is_dir() != (creation.kind == "dir"):
                raise


class LocalHost:
    """The host's filesystem as `mounts.HostView` reads it."""

    def kind(self, path: Path) -> PathKind:
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        except OSError:
            return "other"
        if stat.S_ISDIR(mode):
            return "dir"
        return "file" if stat.S_ISREG(mode) else "other"

    def realpath(self, path: Path) -> Path:
        return Path(os.path.realpath(path))

    def entries(self, path: Path) -> tuple[Entry, ...]:
        found: list[Entry] = []
        with os.scandir(path) as listing:
            for entry in listing:
                if entry.is_symlink():
                    found.append(Entry(entry.name, "symlink", os.readlink(entry.path)))
                elif entry.is_dir(follow_symlinks=False):
                    found.append(Entry(entry.name, "dir"))
                else:
                    found.append(Entry(entry.name, "file"))
        return tuple(sorted(found, key=lambda e: e.name))

    def mode(self, path: Path) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)
