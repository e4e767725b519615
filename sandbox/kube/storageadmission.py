"""Storage objects as the API server admits them: defaults, the default StorageClass,
the in-use protection finalizers, and the validation clients trip over.

- `DefaultStorageClass` (plugin/pkg/admission/storage/storageclass/setdefault): a
  PersistentVolumeClaim created without `spec.storageClassName` gets the default class,
  the one annotated `storageclass.kubernetes.io/is-default-class: "true"` (or the beta
  annotation); with several, the newest, then by name (`GetDefaultClass`). With none it
  stays without a class. An explicit `""` means "no class" and is kept.
- `StorageObjectInUseProtection` (plugin/pkg/admission/storage/storageobjectinuseprotection):
  the finalizers `kubernetes.io/pvc-protection` and `kubernetes.io/pv-protection`, which
  the PV controller's protection loops remove once nothing uses the object.
- Defaults (pkg/apis/core/v1/defaults.go, pkg/apis/storage/v1/defaults.go): claims and
  volumes start `Pending` with `volumeMode: Filesystem`, a volume's reclaim policy is
  `Retain`, a StorageClass's `reclaimPolicy` is `Delete` and its `volumeBindingMode`
  `Immediate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.kube.errors import Cause

KubeObject = dict[str, Any]

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
STORAGE_CLASSES = "storage.k8s.io/storageclasses"


def is_default_class(storage_class: Mapping[str, Any]) -> bool:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return "true" in (
        annotations.get(DEFAULT_CLASS_ANNOTATION),
        annotations.get(BETA_DEFAULT_CLASS_ANNOTATION),
    )


def default_class_name(classes: Iterable[Mapping[str, Any]]) -> str | None:
    """`GetDefaultClass`: the newest default class, ties broken by name.

    >>> def sc(name, created, default=True):
    ...     notes = {DEFAULT_CLASS_ANNOTATION: "true"} if default else {}
    ...     return {"metadata": {"name": name, "creationTimestamp": created,
    ...                          "annotations": notes}}
    >>> default_class_name([sc("gp2", "2026-01-01T00:00:00Z", default=False)]) is None
    True
    >>> default_class_name([sc("b", "2026-01-01T00:00:00Z"), sc("a", "2026-01-01T00:00:00Z"),
    ...                     sc("old", "2025-01-01T00:00:00Z")])
    'a'
    """
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None

    def created(storage_class: Mapping[str, Any]) -> str:
        return str((storage_class.get("metadata") or {}).get("creationTimestamp") or "")

    newest = max(created(c) for c in defaults)  # RFC 3339 in UTC sorts as time does
    return min(
        str((c.get("metadata") or {}).get("name", "")) for c in defaults if created(c) == newest
    )


def set_default_class(claim: KubeObject, classes: Iterable[Mapping[str, Any]]) -> None:
    """The DefaultStorageClass plugin on a claim being created."""
    spec = claim.setdefault("spec", {})
    if spec.get("storageClassName") is not None:
        return
    name = default_class_name(classes)
    if name is not None:
        spec["storageClassName"] = name


def add_finalizer(obj: KubeObject, finalizer: str) -> None:
    finalizers = obj.setdefault("metadata", {}).setdefault("finalizers", [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)


def default_claim(claim: KubeObject) -> None:
    claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")


def default_volume(volume: KubeObject) -> None:
    spec = volume.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")


def default_storage_class(storage_class: KubeObject) -> None:
    storage_class.setdefault("reclaimPolicy", "Delete")
    storage_class.setdefault("volumeBindingMode", "Immediate")


def _access_mode_causes(modes: Any, path: str) -> list[Cause]:
    if not modes:
        return [
            Cause("FieldValueRequired", "Required value: at least 1 access mode is required", path)
        ]
    supported = ", ".join(f'"{mode}"' for mode in ACCESS_MODES)
    return [
        Cause(
            "FieldValueNotSupported",
            f'Unsupported value: "{mode}": supported values: {supported}',
            path,
        )
        for mode in modes
        if mode not in ACCESS_MODES
    ]


def claim_causes(claim: KubeObject) -> list[Cause]:
    """ValidatePersistentVolumeClaimSpec: access modes and a storage request."""
    spec = claim.get("spec") or {}
    causes = _access_mode_causes(spec.get("accessModes"), "spec.accessModes")
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.resources[storage]"))
    return causes


def volume_causes(volume: KubeObject) -> list[Cause]:
    """ValidatePersistentVolumeSpec: access modes and a storage capacity."""
    spec = volume.get("spec") or {}
    causes = _access_mode_causes(spec.get("accessModes"), "spec.accessModes")
    if "storage" not in (spec.get("capacity") or {}):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.capacity"))
    return causes


def storage_class_causes(storage_class: KubeObject) -> list[Cause]:
    causes = []
    if not storage_class.get("provisioner"):
        causes.append(Cause("FieldValueRequired", "Required value", "provisioner"))
    mode = storage_class.get("volumeBindingMode")
    if mode not in ("Immediate", "WaitForFirstConsumer"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{mode}": supported values: "Immediate", '
                '"WaitForFirstConsumer"',
                "volumeBindingMode",
            )
        )
    return causes
