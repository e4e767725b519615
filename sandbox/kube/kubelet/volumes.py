"""A pod's volumes as the kubelet's volume plugins set them up: which files, which errors.

Pure: the pod's `spec.volumes`, a lookup of ConfigMaps and Secrets, and the pod's
downward-API facts in; for each volume the files to write (path, bytes, mode) or
the error the kubelet reports as a `FailedMount` event. `volumefs.py` writes them
under the pod's directory and `mounts.py` plans where each container sees them.

Followed upstream (pkg/volume/...):

- `configMap` (configmap.go `MakePayload`): without `items` every key of `data` and
  `binaryData` is a file; with `items` each listed key goes to its `path`, a missing
  key fails the mount (`configmap references non-existent config key: K`) unless the
  volume is `optional`; a file's mode is the item's `mode`, else `defaultMode`
  (0644). A missing ConfigMap fails with `configmap "NAME" not found`; an `optional`
  one gives an empty volume.
- `secret` (secret.go `MakePayload`): the same with the decoded `data`
  (`secret "NAME" not found`, `references non-existent secret key: K`).
- `downwardAPI` (downwardapi.go `CollectData`): `fieldRef` items of metadata.name,
  namespace, uid, labels and annotations (a map as `key="value"` lines, sorted, as
  fieldpath.FormatMap writes it). `resourceFieldRef` is not served: it fails the
  mount saying so.
- `projected` (projected.go `collectData`): its configMap, secret and downwardAPI
  sources merged, each with its own items and optional flag, `defaultMode` 0644;
  every failing source is reported (`[a, b]`, as utilerrors.NewAggregate prints).
  A `serviceAccountToken` source writes a token bound to the pod at its `path`,
  from the kubelet's `TokenIssuer` (`serviceaccount.py`; an issuer's refusal is
  `failed to fetch token: ...`); the plan says how long the token lives, so that
  the kubelet refreshes it (`token_seconds`).
- `emptyDir`: an empty directory, shared by the pod's containers and kept across
  their restarts; `medium: Memory` and `sizeLimit` are not emulated (a directory
  on disk either way).

- `persistentVolumeClaim` (the kubelet's desired-state populator `getPVCExtractPV`,
  then the volume's plugin): the claim must exist and be bound (`spec.volumeName` and
  phase Bound) to a volume whose source the sandbox can mount, a `hostPath`
  directory, as the sandbox's provisioner makes them
  (controllers/persistentvolume.py); the pod's volume is that directory itself, bound
  at each mountPath, so what one pod writes the next one reads. The claim's
  `readOnly` makes every mount of it read-only. A missing claim fails with
  `failed to fetch PVC from API server: persistentvolumeclaims "x" not found`, an
  unbound one with `PVC ns/x has non-bound phase ("Pending") or empty
  pvc.Spec.VolumeName ("")`.

ConfigMap, Secret, downward-API and projected volumes are mounted read-only
whatever the volumeMount says (their plugins' `GetAttributes().ReadOnly`).

Not materialized (their volumeMounts are left out, as before this module): other
volume types (hostPath, ...), projected volumes with a
`clusterTrustBundle` source, and, when the kubelet has no token issuer, projected
volumes with a `serviceAccountToken` source, such as the `kube-api-access-*` volume
the ServiceAccount admission adds to every pod (its `ca.crt` comes from the
`kube-root-ca.crt` ConfigMap, `sandbox/kube/controllers/rootcacert.py`).

Volume contents are read once, when the pod's volumes are set up: a ConfigMap or
Secret changed afterwards is not propagated to running pods (upstream's kubelet
would update the files within a minute or so; subPath mounts never are).

    >>> cm = {"metadata": {"namespace": "ns"}, "data": {"greeting": "hi"}}
    >>> plan = plan_volume({"name": "cfg", "configMap": {"name": "c"}},
    ...                    lambda resource, name: cm, FACTS_EXAMPLE)
    >>> [(f.path, f.data, oct(f.mode)) for f in plan.files]
    [('greeting', b'hi', '0o644')]
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sandbox.kube.errors import ApiError
from sandbox.kube.kubelet.env import EnvConfigError, ObjectLookup, PodFacts, field_value
from sandbox.kube.kubelet.serviceaccount import TokenSource, token_request

KubeObject = dict[str, Any]
DEFAULT_MODE = 0o644  # api/core/v1 ConfigMapVolumeSourceDefaultMode, SecretVolumeSourceDefaultMode
MAX_PATH_LENGTH = 4096  # atomic_writer.go maxPathLength
MAX_SEGMENT_LENGTH = 255  # atomic_writer.go maxFileNameLength
DATA_DIR_LINK = "..data"  # atomic_writer.go dataDirName
VolumeKind = Literal[
    "configmap", "secret", "downward-api", "projected", "empty-dir", "persistent-volume"
]
# upstream's plugin directory names (kubernetes.io~configmap, ...), for the host layout
PLUGIN_DIRS: dict[VolumeKind, str] = {
    "configmap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downward-api": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
    "empty-dir": "kubernetes.io~empty-dir",
    "persistent-volume": "kubernetes.io~host-path",  # nothing is written there
}
FACTS_EXAMPLE = PodFacts("web-1", "ns", "uid-1", "node-a", "", "127.0.1.1")


class MountVolumeError(Exception):
    """`MountVolume.SetUp failed for volume "x" : ...`: the pod stays ContainerCreating."""

    def __init__(self, volume: str, reason: str) -> None:
        self.volume, self.reason = volume, reason
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {reason}')


@dataclass(frozen=True)
class VolumeFile:
    path: str  # relative to the volume's directory, validated
    data: bytes
    mode: int

    def __repr__(self) -> str:  # never show a Secret's bytes in a log or a failed assert
        return f"VolumeFile({self.path!r}, <{len(self.data)} bytes>, {oct(self.mode)})"


@dataclass(frozen=True)
class VolumePlan:
    """One volume to set up: its files (none for an emptyDir) and how it is mounted."""

    name: str
    kind: VolumeKind
    files: tuple[VolumeFile, ...] = ()
    host_path: str = ""  # a persistent volume's directory, bound as it is
    claim_read_only: bool = False  # persistentVolumeClaim.readOnly
    token_seconds: int = 0  # the shortest lifetime of its service-account tokens (0: none)

    @property
    def read_only(self) -> bool:
        """API-data volumes are always mounted read-only (upstream `ReadOnly: true` attributes);
        a claim's volume when the pod's volume says `readOnly`."""
        if self.kind == "persistent-volume":
            return self.claim_read_only
        return self.kind != "empty-dir"

    @property
    def plugin_dir(self) -> str:
        return PLUGIN_DIRS[self.kind]


@dataclass(frozen=True)
class PodVolumes:
    """What setting up the pod's volumes gives: the volumes to write, and the errors."""

    plans: tuple[VolumePlan, ...]
    errors: tuple[MountVolumeError, ...]
    skipped: tuple[str, ...]  # volumes the sandbox does not materialize


def plan_pod_volumes(
    volumes: Sequence[Mapping[str, Any]],
    lookup: ObjectLookup,
    facts: PodFacts,
    tokens: TokenSource | None = None,
) -> PodVolumes:
    plans: list[VolumePlan] = []
    errors: list[MountVolumeError] = []
    skipped: list[str] = []
    for volume in volumes:
        try:
            plan = plan_volume(volume, lookup, facts, tokens)
        except MountVolumeError as error:
            errors.append(error)
            continue
        if plan is None:
            skipped.append(str(volume.get("name", "")))
        else:
            plans.append(plan)
    return PodVolumes(tuple(plans), tuple(errors), tuple(skipped))


def plan_volume(
    volume: Mapping[str, Any],
    lookup: ObjectLookup,
    facts: PodFacts,
    tokens: TokenSource | None = None,
) -> VolumePlan | None:
    """The volume's files, or None when the sandbox does not materialize its type."""
    name = str(volume.get("name", ""))
    if "persistentVolumeClaim" in volume:
        return claim_volume(name, volume["persistentVolumeClaim"] or {}, lookup, facts.namespace)
    found = _sources(volume, tokens is not None)
    if found is None:
        return None
    kind, sources, default_mode = found
    payload: dict[str, VolumeFile] = {}
    problems: list[str] = []
    lifetimes: list[int] = []
    for key, source in sources:
        try:
            if key == TOKEN_SOURCE and tokens is not None:
                file, seconds = _token_file(source or {}, default_mode, tokens)
                payload[file.path] = file
                lifetimes.append(seconds)
                continue
            for file in _source_files(key, source or {}, default_mode, lookup, facts):
                payload[file.path] = file
        except _SourceError as error:
            problems.append(str(error))
    if problems:
        reason = problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]"
        raise MountVolumeError(name, reason)
    for path in payload:
        problem = path_problem(path)
        if problem:
            raise MountVolumeError(name, problem)
    files = tuple(payload[path] for path in sorted(payload))
    return VolumePlan(name, kind, files, token_seconds=min(lifetimes, default=0))


def claim_volume(
    name: str, source: Mapping[str, Any], lookup: ObjectLookup, namespace: str
) -> VolumePlan:
    """A `persistentVolumeClaim` volume: the bound volume's directory.

    >>> claim = {"spec": {"volumeName": "pvc-1"}, "status": {"phase": "Bound"}}
    >>> pv = {"spec": {"hostPath": {"path": "/state/volumes/pvc-1"}}}
    >>> objects = {("persistentvolumeclaims", "r"): claim, ("persistentvolumes", "pvc-1"): pv}
    >>> claim_volume("reports", {"claimName": "r"}, lambda *key: objects.get(key), "ns").host_path
    '/state/volumes/pvc-1'
    """
    claim_name = str(source.get("claimName", ""))
    claim = lookup("persistentvolumeclaims", claim_name)
    if claim is None:
        raise MountVolumeError(
            name,
            f'failed to fetch PVC from API server: persistentvolumeclaims "{claim_name}" not found',
        )
    volume_name = str((claim.get("spec") or {}).get("volumeName") or "")
    phase = str((claim.get("status") or {}).get("phase") or "")
    if phase != "Bound" or not volume_name:
        raise MountVolumeError(
            name,
            f'PVC {namespace}/{claim_name} has non-bound phase ("{phase}") or empty '
            f'pvc.Spec.VolumeName ("{volume_name}")',
        )
    volume = lookup("persistentvolumes", volume_name)
    if volume is None:
        raise MountVolumeError(
            name,
            f'failed to fetch PV {volume_name} from API server: persistentvolumes "{volume_name}" '
            "not found",
        )
    host_path = str(((volume.get("spec") or {}).get("hostPath") or {}).get("path") or "")
    if not host_path:
        raise MountVolumeError(
            name,
            f"the sandbox mounts only hostPath persistent volumes (as its provisioner makes "
            f"them); {volume_name} has {sorted(volume.get('spec') or {})}",
        )
    return VolumePlan(
        name,
        "persistent-volume",
        host_path=host_path,
        claim_read_only=bool(source.get("readOnly")),
    )


_SOURCE_KINDS: dict[str, VolumeKind] = {
    "configMap": "configmap",
    "secret": "secret",
    "downwardAPI": "downward-api",
}
TOKEN_SOURCE = "serviceAccountToken"
Sources = list[tuple[str, Mapping[str, Any]]]


def _sources(volume: Mapping[str, Any], tokens: bool) -> tuple[VolumeKind, Sources, int] | None:
    """The volume's kind, its sources (one, or a projected volume's) and default mode."""
    if "emptyDir" in volume:
        return "empty-dir", [], DEFAULT_MODE
    for key, kind in _SOURCE_KINDS.items():
        if key in volume:
            source = volume[key] or {}
            return kind, [(key, source)], _mode(source.get("defaultMode"), DEFAULT_MODE)
    if "projected" not in volume:
        return None  # persistentVolumeClaim, hostPath, ...: not materialized
    projected = volume["projected"] or {}
    sources = [
        (key, value) for item in projected.get("sources") or [] for key, value in item.items()
    ]
    served = {*_SOURCE_KINDS, TOKEN_SOURCE} if tokens else set(_SOURCE_KINDS)
    if any(key not in served for key, _ in sources):
        return None  # clusterTrustBundle; serviceAccountToken without an issuer
    return "projected", sources, _mode(projected.get("defaultMode"), DEFAULT_MODE)


class _SourceError(Exception):
    pass


def _source_files(
    key: str, source: Mapping[str, Any], mode: int, lookup: ObjectLookup, facts: PodFacts
) -> list[VolumeFile]:
    if key == "downwardAPI":
        return [_downward_file(item, mode, facts) for item in source.get("items") or []]
    resource, singular = (
        ("configmaps", "configmap") if key == "configMap" else ("secrets", "secret")
    )
    optional = bool(source.get("optional"))
    # a secret volume names its Secret `secretName`; a projected secret source, `name`
    object_name = str(source.get("secretName") or source.get("name") or "")
    obj = lookup(resource, object_name)
    if obj is None:
        if optional:
            return []
        raise _SourceError(f'{singular} "{object_name}" not found')
    data = object_bytes(resource, obj)
    items = source.get("items") or []
    if not items:
        return [VolumeFile(name, value, mode) for name, value in data.items()]
    files = []
    for item in items:
        wanted = str(item.get("key", ""))
        if wanted not in data:
            if optional:
                continue
            missing = (
                "configmap references non-existent config key"
                if key == "configMap"
                else ("references non-existent secret key")
            )
            raise _SourceError(f"{missing}: {wanted}")
        files.append(
            VolumeFile(str(item.get("path", "")), data[wanted], _mode(item.get("mode"), mode))
        )
    return files


def _token_file(
    source: Mapping[str, Any], mode: int, tokens: TokenSource
) -> tuple[VolumeFile, int]:
    request = token_request(source)
    try:
        token = tokens(request)
    except ApiError as error:
        raise _SourceError(f"failed to fetch token: {error.message}") from None
    return VolumeFile(str(source.get("path", "")), token.encode(), mode), request.expiration_seconds


def _downward_file(item: Mapping[str, Any], mode: int, facts: PodFacts) -> VolumeFile:
    path = str(item.get("path", ""))
    if "fieldRef" not in item:
        raise _SourceError(
            f"the sandbox serves only fieldRef in downward API volumes, not {sorted(item)} "
            f"(item {path})"
        )
    field_path = str((item.get("fieldRef") or {}).get("fieldPath", ""))
    whole = {"metadata.labels": facts.labels, "metadata.annotations": facts.annotations}
    if field_path in whole:
        value = format_map(whole[field_path])
    else:
        try:
            value = field_value(field_path, facts)
        except EnvConfigError as error:
            raise _SourceError(str(error)) from None
    return VolumeFile(path, value.encode(), _mode(item.get("mode"), mode))


def format_map(values: Mapping[str, str]) -> str:
    """fieldpath.FormatMap: `key="value"` lines in key order, no trailing newline.

    >>> format_map({"b": "2", "a": 'say "hi"'})
    'a="say \\\\"hi\\\\""\\nb="2"'
    """
    return "\n".join(
        f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values)
    )


def object_bytes(resource: str, obj: KubeObject) -> dict[str, bytes]:
    """A ConfigMap's `data` and `binaryData`, or a Secret's decoded `data` (and `stringData`)."""
    if resource == "secrets":
        decoded = {key: _b64(value) for key, value in (obj.get("data") or {}).items()}
        extra = {key: str(value).encode() for key, value in (obj.get("stringData") or {}).items()}
        return {**decoded, **extra}
    text = {key: str(value).encode() for key, value in (obj.get("data") or {}).items()}
    binary = {key: _b64(value) for key, value in (obj.get("binaryData") or {}).items()}
    return {**text, **binary}


def path_problem(path: str) -> str:
    """atomic_writer.go `validatePath`: '' when the payload path is fine, else why not.

    >>> path_problem("a/b"), path_problem("../x"), path_problem("/etc/x")
    ('', "invalid path: must not contain '..': ../x", 'invalid path: must be relative path: /etc/x')
    """
    if not path:
        return "invalid path: must not be empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
    if path.startswith("/"):
        return f"invalid path: must be relative path: {path}"
    segments = path.split("/")
    if ".." in segments:
        return f"invalid path: must not contain '..': {path}"
    if path.startswith(".."):
        return f"invalid path: must not start with '..': {path}"
    if any(len(segment) > MAX_SEGMENT_LENGTH for segment in segments):
        return (
            f"invalid path: must not contain segments longer than {MAX_SEGMENT_LENGTH} characters"
        )
    if posixpath.normpath(path) != path:
        return f"invalid path: must be clean: {path}"
    return ""


def data_dir_name(now: datetime) -> str:
    """atomic_writer.go `newTimestampDir`: `..2025_01_02_03_04_05.123456789`."""
    return now.strftime("..%Y_%m_%d_%H_%M_%S.%f") + "000"


@dataclass(frozen=True)
class Layout:
    """The volume directory as the AtomicWriter leaves it: the files in a timestamped
    directory, `..data` pointing at it, each top-level name a symlink through `..data`."""

    data_dir: str
    files: tuple[VolumeFile, ...]  # paths relative to data_dir
    links: tuple[tuple[str, str], ...]  # (name, target) in the volume directory


def layout(plan: VolumePlan, now: datetime) -> Layout:
    """
    >>> files = (VolumeFile("a/b.py", b"", 0o644), VolumeFile("c", b"", 0o600))
    >>> layout(VolumePlan("v", "configmap", files), datetime(2025, 1, 2, 3, 4, 5)).links
    (('..data', '..2025_01_02_03_04_05.000000000'), ('a', '..data/a'), ('c', '..data/c'))
    """
    data_dir = data_dir_name(now)
    tops = sorted({file.path.split("/", 1)[0] for file in plan.files})
    links = ((DATA_DIR_LINK, data_dir), *((top, f"{DATA_DIR_LINK}/{top}") for top in tops))
    return Layout(data_dir, plan.files, tuple(links))


def _mode(value: object, default: int) -> int:
    if value is None:
        return default
    try:
        return int(str(value)) & 0o777
    except ValueError:
        return default


def _b64(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError):
        return b""


MOUNT_RETRY_INITIAL_SECONDS = 0.5  # nestedpendingoperations initialDurationBeforeRetry
MOUNT_RETRY_MAX_SECONDS = 122.0  # maxDurationBeforeRetry: 2m2s


def mount_retry_delay(failures: int) -> float:
    """Before the next try after `failures` failed set-ups: 0.5 s doubling, at most 2m2s.

    >>> [mount_retry_delay(n) for n in (1, 2, 3, 20)]
    [0.5, 1.0, 2.0, 122.0]
    """
    return min(MOUNT_RETRY_INITIAL_SECONDS * 2.0 ** max(failures - 1, 0), MOUNT_RETRY_MAX_SECONDS)
