"""Render kustomizations under deploy/ and validate them as Kubernetes objects.

Rendering uses `kubectl kustomize`, the renderer users apply with, rather than
a second implementation that could disagree with it. Source files are read
first, so that a file that is not YAML, or not an object, is reported with
its own path and line instead of kustomize's wording.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from resilience.errors import ManifestError

ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
# The version the sandbox reports and our schema validation targets.
KUBERNETES_VERSION = "1.32"
RENDER_TIMEOUT_SECONDS = 60

# The kubectl on our machines is a version dispatcher that asks the current
# context's server for /version before running anything, kustomize included.
# Rendering must never contact a cluster, so it gets a kubeconfig whose only
# server is a closed loopback port.
_ISOLATED_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@dataclass(frozen=True)
class ManifestObject:
    """One rendered Kubernetes object and the file it came from."""

    body: Mapping[str, Any]
    source: str

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        value = self.body["metadata"].get("namespace")
        return None if value is None else str(value)

    @property
    def ref(self) -> str:
        """`Kind/name`, the way kubectl names objects in messages."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class RenderedManifests:
    """Every object one kustomization renders to."""

    directory: Path
    objects: tuple[ManifestObject, ...]

    def find(self, kind: str, name: str) -> ManifestObject | None:
        for obj in self.objects:
            if obj.kind == kind and obj.name == name:
                return obj
        return None

    def get(self, kind: str, name: str) -> ManifestObject:
        found = self.find(kind, name)
        if found is None:
            raise ManifestError(f"{self.directory}: renders no {kind}/{name}")
        return found

    def of_kind(self, kind: str) -> tuple[ManifestObject, ...]:
        return tuple(obj for obj in self.objects if obj.kind == kind)


def render(directory: Path | str, files_outside: bool = False) -> RenderedManifests:
    """Check the sources, render with kubectl kustomize, validate every object.

    `files_outside`: the kustomization reads files from outside its directory
    (deploy/locust's configMapGenerator takes loadtests/), which kustomize allows only
    with `--load-restrictor LoadRestrictionsNone`."""
    root = Path(directory)
    check_sources(root)
    documents = _kustomize(root, files_outside)
    objects = tuple(_attribute(doc, root) for doc in documents)
    for obj in objects:
        validate_object(obj)
    return RenderedManifests(directory=root, objects=objects)


def check_sources(directory: Path) -> None:
    """Parse every file a kustomization names, following bases, before rendering."""
    kustomization = _find_kustomization(directory)
    config = _load_single_mapping(kustomization)
    for resource in _string_list(config, "resources", kustomization):
        path = directory / resource
        if path.is_dir():
            check_sources(path)
        else:
            for index, document in enumerate(load_yaml_documents(path), start=1):
                _require_object_shape(document, path, index)
    for patch in config.get("patches") or []:
        if isinstance(patch, Mapping) and isinstance(patch.get("path"), str):
            list(load_yaml_documents(directory / patch["path"]))


def load_yaml_documents(path: Path) -> Iterator[Any]:
    """Yield the YAML documents of a file; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: cannot be read: {error}") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ManifestError(f"{path}: {where}not valid YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from None
    yield from (document for document in documents if document is not None)


def validate_object(obj: ManifestObject) -> None:
    """Validate against the Kubernetes OpenAPI schema, naming file, object and field."""
    try:
        kubernetes_validate.validate(dict(obj.body), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        field = _dotted_path(error.path)
        raise ManifestError(
            f"{obj.source}: {obj.ref}: {field or '(object)'}: {error.message}"
        ) from None
    except kubernetes_validate.SchemaNotFoundError:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: unknown kind {obj.kind} in "
            f"{obj.body.get('apiVersion')} for Kubernetes {KUBERNETES_VERSION}"
        ) from None


def _kustomize(directory: Path, files_outside: bool = False) -> list[Mapping[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ManifestError("kubectl not found on PATH: it renders deploy/ (kubectl kustomize)")
    with tempfile.TemporaryDirectory(prefix="hf-render-") as scratch:
        kubeconfig = Path(scratch) / "kubeconfig"
        kubeconfig.write_text(_ISOLATED_KUBECONFIG, encoding="utf-8")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": scratch}
        try:
            completed = subprocess.run(
                [
                    kubectl,
                    "kustomize",
                    *(["--load-restrictor", "LoadRestrictionsNone"] if files_outside else []),
                    str(directory),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=RENDER_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ManifestError(
                f"{directory}: kubectl kustomize took longer than {RENDER_TIMEOUT_SECONDS}s"
            ) from None
    if completed.returncode != 0:
        message = " ".join(completed.stderr.split()) or f"exit code {completed.returncode}"
        raise ManifestError(f"{directory}: kubectl kustomize failed: {message}")
    documents = [doc for doc in yaml.safe_load_all(completed.stdout) if doc is not None]
    return [doc for doc in documents if isinstance(doc, Mapping)]


def _attribute(document: Mapping[str, Any], directory: Path) -> ManifestObject:
    """Move kustomize's origin annotation out of the object and into `source`."""
    body: dict[str, Any] = _deep_copy(document)
    metadata = body.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    origin_text = annotations.pop(ORIGIN_ANNOTATION, None)
    if not annotations:
        metadata.pop("annotations", None)
    source = str(directory / "kustomization.yaml")
    if origin_text:
        origin = yaml.safe_load(origin_text) or {}
        if isinstance(origin.get("path"), str):
            source = os.path.normpath(directory / origin["path"])
        elif isinstance(origin.get("configuredIn"), str):
            source = os.path.normpath(directory / origin["configuredIn"])
    return ManifestObject(body=body, source=source)


def _find_kustomization(directory: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise ManifestError(f"{directory}: no kustomization.yaml")


def _load_single_mapping(path: Path) -> Mapping[str, Any]:
    documents = list(load_yaml_documents(path))
    if len(documents) != 1 or not isinstance(documents[0], Mapping):
        raise ManifestError(f"{path}: expected one YAML mapping")
    mapping: Mapping[str, Any] = documents[0]
    return mapping


def _string_list(config: Mapping[str, Any], key: str, path: Path) -> list[str]:
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ManifestError(f"{path}: {key}: expected a list of paths")
    return value


def _require_object_shape(document: Any, path: Path, index: int) -> None:
    where = f"{path}: document {index}"
    if not isinstance(document, Mapping):
        raise ManifestError(f"{where}: expected a Kubernetes object, got {type(document).__name__}")
    for field in ("apiVersion", "kind"):
        if not isinstance(document.get(field), str) or not document[field]:
            raise ManifestError(f"{where}: missing field {field}")
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        raise ManifestError(f"{where}: {document['kind']}: missing field metadata.name")


def _dotted_path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value
