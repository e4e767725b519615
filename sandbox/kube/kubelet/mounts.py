"""Where a container sees its pod's volumes: the mount steps for its own mount namespace.

Pure: the container's `volumeMounts`, the host directories of the pod's volumes
(`volumefs.py`) and a view of the host's filesystem in; the steps out, which the
child carries out before exec (`sandbox/mountns.py`). As containerd and runc do,
mounts go in order of depth (containerd `sortMounts`), `subPath` binds a path
inside the volume (created there when missing, as the kubelet's `SafeMakeDir`),
`readOnly` (or a read-only volume type) remounts the bind read-only, and a mount
point inside an earlier volume is created in that volume.

The sandbox's containers run on the host's filesystem, and **the sandbox never
creates a directory or file on the host for a mount point** (runc creates missing
mount points inside the container's rootfs; here that would be the host's `/`).
The rule, for a mountPath P of a real-process image:

1. P exists on the host (symlinks followed, as mount(2) does): the volume is bound
   over it, in the container's namespace only (the host keeps its P). The type must
   match (a directory over a directory, a file over a file).
2. P is missing, and the parent of its first missing component is a dedicated
   mount-point directory (`/mnt`, `/media`, `/srv`: by the FHS they hold mount
   points, not files programs need): a tmpfs is mounted over that directory in the
   container's namespace, every entry it held is bound back into it (so the process
   still sees the host's `/mnt/...`), and the missing directories are made inside
   the tmpfs. `/mnt/locust` works this way on any host.
3. Otherwise (`/data/x` when `/data` is missing, `/home/app/x` ...) the container
   does not start: a StartError saying why, as runc reports a failed mount. A
   tmpfs over `/`, `/home`, `/tmp` or `/usr` would hide what the process needs.

Stand-in images (busybox, python, nginx, pause) read only their own directory
(`containers.container_root`); their volumes are bound at `<root>/<mountPath>`,
whose mount points the kubelet may create (the directory is the sandbox's own).

Errors: a volumeMount naming no volume, a bad or escaping subPath and a duplicate
mountPath are the kubelet's `CreateContainerConfigError` (`MountConfigError`); a
mount point the sandbox will not create, or of the wrong type, fails the start
(`MountPlanError`), except that a subPath escaping its volume through a symlink is
found only here, so it is a start error too. Volumes the sandbox does not
materialize (`volumes.py`) are left out, as before.

Worked example: a ConfigMap volume at /mnt/locust on a host whose /mnt holds
`data/` -> steps `Tmpfs(/mnt, entries=[data])`, `MakeMountPoint(/mnt/locust)`,
`Bind(<pod dir>/kubernetes.io~configmap/locustfiles, /mnt/locust, read_only)`; the
same volume at /data/locust on a host without /data -> MountPlanError
`... mkdir /data: the sandbox creates no mount point on the host's filesystem ...`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from sandbox.kube.kubelet.env import EnvConfigError, expand
from sandbox.mountns import Bind, Entry, MakeMountPoint, MountStep, PointKind, Tmpfs

DEDICATED = (Path("/mnt"), Path("/media"), Path("/srv"))
MAX_COVERED_ENTRIES = 64  # a tmpfs binds back what it covers: only a handful, by design
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


@dataclass
class _Planner:
    volumes: Mapping[str, VolumeSource | None]
    host: HostView
    root: Path | None
    dedicated: tuple[Path, ...]
    prepare: list[Create] = field(default_factory=list)
    covers: dict[Path, Tmpfs] = field(default_factory=dict)
    steps: list[MountStep] = field(default_factory=list)
    placed: list[tuple[Path, Path]] = field(default_factory=list)  # (mountPath, host source)

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
        owner = self._owner(target)
        if owner is not None:
            at = self._inside(owner, target, source_kind, where)
        else:
            at = self._on_host(target, source_kind, where)
        self.steps.append(Bind(source, at, mount.read_only or volume.read_only))
        self.placed.append((target, source))

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

    def _owner(self, target: Path) -> tuple[Path, Path] | None:
        """The deepest earlier mount (or a stand-in's root at `/`) holding `target`."""
        for mounted, source in reversed(self.placed):
            if mounted in target.parents:
                return mounted, source
        return (ROOT, self.root) if self.root is not None else None

    def _inside(self, owner: tuple[Path, Path], target: Path, kind: PointKind, where: str) -> Path:
        """A mount point inside an earlier volume or a stand-in's root: made there if missing."""
        mounted, source = owner
        at = source / target.relative_to(mounted)
        found = self.host.kind(at)
        if found == "missing":
            self._create_beneath(self.host.realpath(source), self.host.realpath(at), kind, where)
        else:
            _check_type(found, kind, where)
        return self._namespace_path(target)

    def _namespace_path(self, target: Path) -> Path:
        """Where the child mounts: the path itself, or beneath a stand-in's root."""
        return target if self.root is None else self.root / target.relative_to(ROOT)

    def _on_host(self, target: Path, kind: PointKind, where: str) -> Path:
        resolved = self.host.realpath(target)
        found = self.host.kind(resolved)
        if found != "missing":
            _check_type(found, kind, where)
            return resolved
        missing = _first_missing(resolved, self.host)
        parent = missing.parent
        if parent not in self.dedicated:
            allowed = ", ".join(str(path) for path in self.dedicated)
            raise MountPlanError(
                f"{where}: mkdir {missing}: the sandbox creates no mount point on the host's "
                f"filesystem; a missing mountPath can only be made under {allowed} (see "
                "sandbox/kube/kubelet/mounts.py)"
            )
        self._cover(parent, where)
        for path in _components(missing, resolved):
            self.steps.append(MakeMountPoint(path, kind if path == resolved else "dir"))
        return resolved

    def _cover(self, directory: Path, where: str) -> None:
        if directory in self.covers:
            return
        entries = self.host.entries(directory)
        if len(entries) > MAX_COVERED_ENTRIES:
            raise MountPlanError(
                f"{where}: {directory} holds {len(entries)} entries, more than the "
                f"{MAX_COVERED_ENTRIES} the sandbox binds back over a tmpfs"
            )
        self.covers[directory] = Tmpfs(directory, self.host.mode(directory), entries)

    def _create_beneath(self, under: Path, path: Path, kind: PointKind, where: str) -> None:
        if path != under and under not in path.parents:
            raise MountPlanError(f"{where}: {path} is not within {under}")
        for component in _components(_first_missing(path, self.host), path):
            self.prepare.append(Create(component, kind if component == path else "dir", under))

    def plan(self) -> MountPlan:
        return MountPlan(tuple(self.prepare), (*self.covers.values(), *self.steps))


def plan_mounts(
    mounts: Sequence[VolumeMount],
    volumes: Mapping[str, VolumeSource | None],
    host: HostView,
    root: Path | None = None,
    dedicated: Sequence[Path] = DEDICATED,
) -> MountPlan:
    """The mounts of one container; `root` is a stand-in's own directory (None: the host's).

    Raises MountPlanError for a mount the sandbox will not make.
    """
    planner = _Planner(volumes, host, root, tuple(dedicated))
    for mount in sorted(mounts, key=lambda m: len(Path(m.mount_path).parts)):
        planner.add(mount)
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
