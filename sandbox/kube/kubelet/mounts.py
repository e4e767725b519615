"""Where a container sees its pod's volumes: the mount steps for its own mount namespace.

Pure: the container's `volumeMounts`, the host directories of the pod's volumes
(`volumefs.py`) and a view of the host's filesystem in; the steps out, which the
child carries out before exec (`sandbox/mountns.py`). As containerd and runc do,
mounts go in order of depth (containerd `sortMounts`), `subPath` binds a path
inside the volume (created there when missing, as the kubelet's `SafeMakeDir`),
`readOnly` (or a read-only volume type) remounts the bind read-only, and a mount
point inside an earlier volume is created in that volume.

**A real-process container gets its own root, as a container runtime gives it one**
(`ContainerRoot`), and **the sandbox never creates a directory or file on the host
for it**. The images have no filesystem of their own: their rootfs is the host's,
seen through binds. So the root is a tmpfs, mounted on an empty directory of the
sandbox's (`at`) in the container's namespace, in which every top-level entry of
the host's `/` is bound back (recursive binds: /proc, /dev, /sys, /usr, /etc ...
are the host's) except the entries a volume takes the place of (an emptyDir at
/tmp hides the host's /tmp); the image's own files (`binds`, the project at /app
for the suite's image) are bound read-only; then the volumes; then the process
pivots into the root (runc's pivot_root). For a mountPath P:

1. P exists on the host (symlinks followed, as mount(2) does): the volume is bound
   over it in the new root (the host keeps its P). The type must match (a
   directory over a directory, a file over a file).
2. P is a top-level entry (`/tmp`), or its first missing component is (`/reports`):
   made in the root's tmpfs.
3. Otherwise the parent of P's first missing component (`/run` for
   /var/run/secrets/kubernetes.io/serviceaccount: /var/run is a symlink to /run) is
   covered by a small tmpfs in the new root, every entry it held bound back (so the
   process still sees the host's /run/...), and the missing directories are made
   inside the tmpfs. This is the old rule for /mnt, /media and /srv, for any
   directory: the new root is there to take the writes a host directory must not.

The working directory (`workingDir`, else the image's WORKDIR, else `/`) is made
the same way when missing, as runc creates the process's cwd in the rootfs.
`readOnlyRootFilesystem` is honoured as runc honours it: every mount of the new root
read-only (the host's entries, the image's files, the tmpfs root and its covers)
but the volumes and the kernel's /proc, /dev and /sys.

Stand-in images (busybox, python, nginx, pause) read only their own directory
(`containers.standin_root`); their volumes are bound at `<root>/<mountPath>`,
whose mount points the kubelet may create (the directory is the sandbox's own).

Errors: a volumeMount naming no volume, a bad or escaping subPath and a duplicate
mountPath are the kubelet's `CreateContainerConfigError` (`MountConfigError`); a
mount point of the wrong type, over `/`, inside the image's own files (the host's
project) or under a directory of more than MAX_COVERED_ENTRIES entries fails the
start (`MountPlanError`), and so does a subPath escaping its volume through a
symlink, found only here. Volumes the sandbox does not materialize (`volumes.py`)
are left out, as before.

Worked example: a ConfigMap volume at /var/run/secrets/x and an emptyDir at /reports
on a host whose /run holds `lock` and has no `secrets` -> steps
`NewRoot(<at>, <every entry of the host's />)`, `Tmpfs(<at>/run, entries=[lock])`,
`MakeMountPoint(<at>/reports)`, `Bind(<pod dir>/kubernetes.io~empty-dir/reports,
<at>/reports)`, `MakeMountPoint(<at>/run/secrets)`, `MakeMountPoint(<at>/run/secrets/x)`,
`Bind(<pod dir>/kubernetes.io~configmap/x, <at>/run/secrets/x, read_only)`,
`PivotRoot(<at>)`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from sandbox.kube.kubelet.env import EnvConfigError, expand
from sandbox.mountns import (
    Bind,
    Entry,
    MakeMountPoint,
    MountStep,
    NewRoot,
    PivotRoot,
    PointKind,
    ReadOnlyRoot,
    Tmpfs,
)

# A tmpfs binds back every entry of the directory it covers, one mount each: /etc's
# hundred-odd is fine, a directory of thousands is refused rather than bound entry by entry.
MAX_COVERED_ENTRIES = 512
PathKind = Literal["dir", "file", "missing", "other"]
ROOT = Path("/")


class MountConfigError(EnvConfigError):
    """The kubelet's makeMounts refuses the volumeMount: CreateContainerConfigError."""


class MountPlanError(OSError):
    """The runtime could not make the mount: the container start fails (StartError)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class VolumeMount:
    """One of the container's volumeMounts, checked: an absolute, clean mountPath and a
    relative subPath without `..` ('' for the whole volume)."""

    name: str
    mount_path: str
    read_only: bool
    sub_path: str = ""


@dataclass(frozen=True)
class VolumeSource:
    """A volume the kubelet has set up: its host directory, and whether it is read-only."""

    path: Path
    read_only: bool


@dataclass(frozen=True)
class Create:
    """A mount point the kubelet makes before the start, beneath `under`, a directory of the
    sandbox's own (a volume's directory or a stand-in's root), never elsewhere."""

    path: Path
    kind: PointKind
    under: Path


@dataclass(frozen=True)
class MountPlan:
    prepare: tuple[Create, ...] = ()  # by the kubelet, before the start
    steps: tuple[MountStep, ...] = ()  # by the child, in its own mount namespace


class HostView(Protocol):
    """What the planner reads of the host's filesystem (`volumefs.LocalHost`)."""

    def kind(self, path: Path) -> PathKind:
        """What `path` is, symlinks followed."""
        ...

    def realpath(self, path: Path) -> Path:
        """`path` with the symlinks of its existing part resolved."""
        ...

    def entries(self, path: Path) -> tuple[Entry, ...]:
        """The entries of a directory (symlinks not followed)."""
        ...

    def mode(self, path: Path) -> int: ...


# ---- the container's volumeMounts, checked (makeMounts) ----


def container_mounts(
    container: Mapping[str, Any],
    env: Mapping[str, str],
    volumes: Mapping[str, VolumeSource | None],
) -> tuple[VolumeMount, ...]:
    """The volumeMounts to make; those of volumes the sandbox does not set up are left out.

    `volumes` maps every volume of the pod to its source (None: not materialized).
    `subPathExpr` expands `$(VAR)` from the container's env (upstream
    ExpandContainerVolumeMounts).
    """
    name = str(container.get("name", ""))
    result: list[VolumeMount] = []
    seen: set[str] = set()
    for raw in container.get("volumeMounts") or []:
        volume = str(raw.get("name", ""))
        if volume not in volumes:
            raise MountConfigError(
                f'cannot find volume "{volume}" to mount into container "{name}"'
            )
        mount_path = str(raw.get("mountPath", ""))
        if not mount_path.startswith("/"):
            raise MountConfigError(
                f'volumeMount "{volume}" of container "{name}": mountPath "{mount_path}" '
                "must be an absolute path"
            )
        mount_path = posixpath.normpath(mount_path)
        if mount_path.startswith("//"):
            mount_path = mount_path[1:]
        if mount_path in seen:
            raise MountConfigError(f'container "{name}": mountPath "{mount_path}" must be unique')
        seen.add(mount_path)
        sub_path = _sub_path(raw, env, volume, name)
        if volumes[volume] is None:
            continue
        result.append(VolumeMount(volume, mount_path, bool(raw.get("readOnly")), sub_path))
    return tuple(result)


def _sub_path(raw: Mapping[str, Any], env: Mapping[str, str], volume: str, container: str) -> str:
    """kubelet_pods.go makeMounts: not absolute, no `..`; subPathExpr expanded first."""
    expression = raw.get("subPathExpr")
    sub_path = str(raw.get("subPath") or "")
    if expression:
        sub_path = expand(str(expression), env)
        if "$(" in sub_path:
            raise MountConfigError(
                f'failed to prepare subPath for volumeMount "{volume}" of container "{container}"'
            )
    if not sub_path:
        return ""
    if sub_path.startswith("/"):
        raise MountConfigError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise MountConfigError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")
    return posixpath.normpath(sub_path)


# ---- the steps ----


@dataclass(frozen=True)
class ImageBind:
    """A directory of the image's own: the host's `source`, read-only at `path`."""

    path: str
    source: Path


@dataclass(frozen=True)
class ContainerRoot:
    """A real-process container's own root, a tmpfs mounted on `at` (an empty directory of
    the sandbox's) in the container's namespace only."""

    at: Path
    binds: tuple[ImageBind, ...] = ()
    workdir: str = "/"  # made in the root when missing
    read_only: bool = False  # securityContext.readOnlyRootFilesystem
    # Host directories the image's process runs from (the sandbox's interpreter and
    # project): an image's own files on a node, which no volume hides. A volume whose
    # mountPath holds one (an emptyDir at /tmp over a project cloned under /tmp) gets it
    # bound back, read-only, at the same path inside.
    runtime: tuple[Path, ...] = ()


@dataclass
class _Planner:
    volumes: Mapping[str, VolumeSource | None]
    host: HostView
    root: Path | ContainerRoot
    prepare: list[Create] = field(default_factory=list)
    covers: dict[Path, Tmpfs] = field(default_factory=dict)
    steps: list[MountStep] = field(default_factory=list)
    # (mountPath, host source, where the child mounts it)
    placed: list[tuple[Path, Path, Path]] = field(default_factory=list)
    image_paths: list[Path] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)  # top-level entries a mount replaces
    writable: list[Path] = field(default_factory=list)  # the volumes' places in the root

    @property
    def new_root(self) -> Path:
        assert isinstance(self.root, ContainerRoot)
        return self.root.at

    def skip_replaced(self, targets: Iterable[Path]) -> None:
        """The host's top-level entries a mount takes the place of are not bound back."""
        for target in targets:
            resolved = self.host.realpath(target)
            if resolved != ROOT and resolved.parent == ROOT:
                self.skipped.add(resolved.name)

    def add_image_bind(self, bind: ImageBind) -> None:
        target = Path(posixpath.normpath(bind.path))
        where = f'error mounting "{bind.source}" to rootfs at "{target}"'
        self.steps.append(Bind(bind.source, self._in_new_root(target, "dir", where), True))
        self.image_paths.append(target)

    def add(self, mount: VolumeMount) -> None:
        volume = self.volumes[mount.name]
        assert volume is not None  # container_mounts left those out
        source, source_kind = self._source(volume.path, mount.sub_path)
        target = Path(mount.mount_path)
        if target == ROOT:
            raise MountPlanError(
                f'error mounting "{source}" to rootfs at "/": the sandbox does not mount over '
                "the host's root"
            )
        where = f'error mounting "{source}" to rootfs at "{target}"'
        self._refuse_inside_image(target, where)
        owner = self._owner(target)
        if owner is not None:
            at = self._inside(owner, target, source_kind, where)
        else:
            at = self._in_new_root(target, source_kind, where)
        self.steps.append(Bind(source, at, mount.read_only or volume.read_only))
        self.placed.append((target, source, at))
        self.writable.append(at)

    def keep_runtime(self, paths: Iterable[Path]) -> None:
        """Bind back each runtime directory a volume's mountPath holds (see ContainerRoot)."""
        for path in sorted({self.host.realpath(p) for p in paths}, key=lambda p: len(p.parts)):
            owner = self._owner(path)
            if owner is None or owner[0] == path:
                continue  # in no volume (the host's, bound back with /), or a volume itself
            where = f'error keeping the image\'s runtime "{path}" under the volume at "{owner[0]}"'
            at = self._inside(owner, path, "dir", where)
            self.steps.append(Bind(path, at, True))

    def add_workdir(self, workdir: str) -> None:
        """runc makes the process's cwd in the rootfs when it is missing: here, in a volume
        that holds it or in the new root, never on the host."""
        target = Path(posixpath.normpath(workdir))
        where = f'error creating cwd "{target}"'
        if target == ROOT or any(p == target or p in target.parents for p in self.image_paths):
            return  # the image's own files: there or not (then chdir fails, in runc's words)
        owner = self._owner(target)
        if owner is not None:
            self._inside(owner, target, "dir", where)
            return
        resolved = self.host.realpath(target)
        if self.host.kind(resolved) == "missing":
            self._make_missing(resolved, "dir", where)

    def _refuse_inside_image(self, target: Path, where: str) -> None:
        for path in self.image_paths:
            if path == target or path in target.parents:
                raise MountPlanError(
                    f"{where}: inside the image's {path}, which is the host's own directory "
                    "in the sandbox: a mount point there would be made on the host"
                )

    def _source(self, volume: Path, sub_path: str) -> tuple[Path, PointKind]:
        if not sub_path:
            return volume, "dir"
        source = volume / sub_path
        base = self.host.realpath(volume)
        resolved = self.host.realpath(source)
        if resolved != base and base not in resolved.parents:
            raise MountPlanError(f'subpath "{source}" not within volume path "{volume}"')
        kind = self.host.kind(resolved)
        if kind == "missing":
            self._create_beneath(base, resolved, "dir", f'subpath "{source}"')
            return resolved, "dir"
        return resolved, "dir" if kind == "dir" else "file"

    def _owner(self, target: Path) -> tuple[Path, Path, Path] | None:
        """The deepest earlier mount (or a stand-in's root at `/`) holding `target`."""
        for mounted, source, at in reversed(self.placed):
            if mounted in target.parents:
                return mounted, source, at
        return (ROOT, self.root, self.root) if isinstance(self.root, Path) else None

    def _inside(
        self, owner: tuple[Path, Path, Path], target: Path, kind: PointKind, where: str
    ) -> Path:
        """A mount point inside an earlier volume or a stand-in's root: made there if missing."""
        mounted, source, mounted_at = owner
        on_host = source / target.relative_to(mounted)
        found = self.host.kind(on_host)
        if found == "missing":
            self._create_beneath(
                self.host.realpath(source), self.host.realpath(on_host), kind, where
            )
        else:
            _check_type(found, kind, where)
        return mounted_at / target.relative_to(mounted)

    def _in_new_root(self, target: Path, kind: PointKind, where: str) -> Path:
        resolved = self.host.realpath(target)
        at = self.new_root / resolved.relative_to(ROOT)
        if resolved.parent == ROOT and resolved.name in self.skipped:
            self.steps.append(MakeMountPoint(at, kind))  # in the root's tmpfs
            return at
        found = self.host.kind(resolved)
        if found != "missing":
            _check_type(found, kind, where)
            return at
        self._make_missing(resolved, kind, where)
        return at

    def _make_missing(self, resolved: Path, kind: PointKind, where: str) -> None:
        """The missing directories of `resolved` in the new root: on its tmpfs, or on a tmpfs
        covering the parent of the first missing one."""
        missing = _first_missing(resolved, self.host)
        if missing.parent != ROOT:
            self._cover(missing.parent, where)
        for path in _components(missing, resolved):
            point = self.new_root / path.relative_to(ROOT)
            self.steps.append(MakeMountPoint(point, kind if path == resolved else "dir"))

    def _cover(self, directory: Path, where: str) -> None:
        at = self.new_root / directory.relative_to(ROOT)
        if at in self.covers:
            return
        entries = self.host.entries(directory)
        if len(entries) > MAX_COVERED_ENTRIES:
            raise MountPlanError(
                f"{where}: {directory} holds {len(entries)} entries, more than the "
                f"{MAX_COVERED_ENTRIES} the sandbox binds back over a tmpfs"
            )
        self.covers[at] = Tmpfs(at, self.host.mode(directory), entries)

    def _create_beneath(self, under: Path, path: Path, kind: PointKind, where: str) -> None:
        if path != under and under not in path.parents:
            raise MountPlanError(f"{where}: {path} is not within {under}")
        for component in _components(_first_missing(path, self.host), path):
            self.prepare.append(Create(component, kind if component == path else "dir", under))

    def plan(self) -> MountPlan:
        if not isinstance(self.root, ContainerRoot):
            return MountPlan(tuple(self.prepare), tuple(self.steps))
        entries = tuple(e for e in self.host.entries(ROOT) if e.name not in self.skipped)
        covers = sorted(self.covers.values(), key=lambda cover: len(cover.path.parts))
        closing: list[MountStep] = []
        if self.root.read_only:
            closing.append(ReadOnlyRoot(self.root.at, tuple(self.writable)))
        closing.append(PivotRoot(self.root.at))
        steps = (NewRoot(self.root.at, entries), *covers, *self.steps, *closing)
        return MountPlan(tuple(self.prepare), steps)


def plan_mounts(
    mounts: Sequence[VolumeMount],
    volumes: Mapping[str, VolumeSource | None],
    host: HostView,
    root: Path | ContainerRoot,
) -> MountPlan:
    """The mounts of one container: a stand-in's (`root` its own directory) or a
    real-process container's, in a root of its own.

    Raises MountPlanError for a mount the sandbox will not make.
    """
    planner = _Planner(volumes, host, root)
    ordered = sorted(mounts, key=lambda m: len(Path(m.mount_path).parts))
    if isinstance(root, ContainerRoot):
        binds = sorted(root.binds, key=lambda b: len(Path(b.path).parts))
        planner.skip_replaced([Path(b.path) for b in binds] + [Path(m.mount_path) for m in ordered])
        for bind in binds:
            planner.add_image_bind(bind)
    for mount in ordered:
        planner.add(mount)
    if isinstance(root, ContainerRoot):
        planner.keep_runtime(root.runtime)
        planner.add_workdir(root.workdir)
    return planner.plan()


def _check_type(found: PathKind, wanted: PointKind, where: str) -> None:
    if found == "other" or (found == "dir") != (wanted == "dir"):
        raise MountPlanError(
            f"{where}: not a {'directory' if wanted == 'dir' else 'file'}: Are you trying to "
            "mount a directory onto a file (or vice-versa)? Check if the specified host path "
            "exists and is the expected type"
        )


def _first_missing(path: Path, host: HostView) -> Path:
    """The first component of `path` that does not exist (`path` itself at the latest)."""
    for candidate in (*reversed(path.parents), path):
        if host.kind(candidate) == "missing":
            return candidate
    return path


def _components(first: Path, last: Path) -> Iterable[Path]:
    """`/mnt/a`, `/mnt/a/b` -> /mnt/a, /mnt/a/b (from `first` down to `last`)."""
    chain = [last, *(p for p in last.parents if p == first or first in p.parents)]
    return reversed(chain)
