"""The sandbox's image registry: image reference -> what a container of it runs.

A table, one line of documentation per image (kwok's stages as data): the
kubelet looks a reference up when it "pulls", and an unknown reference fails
the way a missing tag fails on EKS (`ErrImagePull`, then `ImagePullBackOff`).
Real images are local processes (`argv`); virtual ones run nothing and are
Running and Ready at once, so that 1,000 pods fit on one machine.

The session-state tags run the reference service (`sandbox.images.session_state`),
which needs PostgreSQL and Redis (`DB_URL`, `REDIS_URL`); the `sandbox.local/testapp`
tags run a stand-in with the same probes and no dependencies.

    >>> DEFAULT_REGISTRY.lookup("ghcr.io/harmonyflow/session-state:crash").args
    ('--fault', 'crash')
    >>> DEFAULT_REGISTRY.lookup("sandbox.local/testapp:crash").description
    'exits with code 1 two seconds after it starts: CrashLoopBackOff'
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.images.session_state.faults import FAULT_TABLE, HEALTHY_TAGS

SESSION_STATE = "ghcr.io/harmonyflow/session-state"
SESSION_STATE_MODULE = "sandbox.images.session_state"
TESTAPP = "sandbox.local/testapp"
TESTAPP_MODULE = "sandbox.images.testapp"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ImageNotFoundError(LookupError):
    """The reference names no image in the registry (a missing tag on a real registry)."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{reference}": '
            f'failed to resolve reference "{reference}": {reference}: not found'
        )


@dataclass(frozen=True)
class ImageSpec:
    """One image: a Python module run as the container's process, or nothing (virtual)."""

    reference: str
    description: str
    module: str = ""
    args: tuple[str, ...] = ()
    virtual: bool = False
    size_bytes: int = 48_234_496
    env: tuple[tuple[str, str], ...] = field(default=())

    def argv(self, pod_env: Mapping[str, str]) -> list[str]:
        """The process to start; `$(VAR)` in args expands from the container's env."""
        if self.virtual:
            raise ValueError(f"{self.reference} is virtual: it runs no process")
        return [sys.executable, "-m", self.module, *(_expand(a, pod_env) for a in self.args)]

    def image_env(self) -> dict[str, str]:
        """The image's own ENV (as a Dockerfile would set it); the container's env wins."""
        return {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **dict(self.env)}

    @property
    def image_id(self) -> str:
        """`repo@sha256:<digest>`, stable per reference, as containerd reports it."""
        repository = (
            self.reference.rsplit(":", 1)[0] if _has_tag(self.reference) else self.reference
        )
        digest = hashlib.sha256(self.reference.encode()).hexdigest()
        return f"{repository}@sha256:{digest}"


class ImageRegistry:
    """Lookup by reference; `docker.io/library/` and `:latest` are implied as upstream."""

    def __init__(self, images: Iterable[ImageSpec] | None = None) -> None:
        self._images = {image.reference: image for image in (IMAGES if images is None else images)}

    def lookup(self, reference: str) -> ImageSpec:
        image = self._images.get(normalize(reference))
        if image is None:
            raise ImageNotFoundError(reference)
        return image

    def references(self) -> list[str]:
        return sorted(self._images)


def normalize(reference: str) -> str:
    """`nginx` -> `docker.io/library/nginx:latest`; references with a tag stay as they are."""
    name = reference if _has_tag(reference) or "@" in reference else f"{reference}:latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def _has_tag(reference: str) -> bool:
    return ":" in reference.rsplit("/", 1)[-1]


def _expand(text: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _testapp(reference: str, variant: str, description: str) -> ImageSpec:
    return ImageSpec(reference, description, TESTAPP_MODULE, ("--variant", variant))


def _session_state(tag: str, description: str, fault: str = "") -> ImageSpec:
    args = ("--fault", fault) if fault else ()
    env = (("SERVICE_VERSION", tag),)
    return ImageSpec(f"{SESSION_STATE}:{tag}", description, SESSION_STATE_MODULE, args, env=env)


_RELEASES = {
    "1.0.0": "the seed's image: the reference session-state service (PostgreSQL + Redis)",
    "1.0.1": "the reference service; a patch release to roll out",
    "1.1.0": "the reference service; a minor release to roll out",
}
_TESTAPP_VARIANTS = (
    ("healthy", "the generic healthy test service, no databases"),
    ("never-ready", "readiness always answers 503: Running, never Ready, never restarted"),
    (
        "liveness-hang",
        "every request hangs after HANG_AFTER_SECONDS (default 20): liveness must catch it",
    ),
    ("crash", "exits with code 1 two seconds after it starts: CrashLoopBackOff"),
    ("slow-start", "not ready for STARTUP_SECONDS (default 20); live all along"),
    ("ignore-sigterm", "ignores SIGTERM: only SIGKILL at the end of the grace period stops it"),
)

IMAGES: tuple[ImageSpec, ...] = (
    *(_session_state(tag, _RELEASES[tag]) for tag in HEALTHY_TAGS),
    *(_session_state(f.name, f.description, f.name) for f in FAULT_TABLE),
    *(_testapp(f"{TESTAPP}:{variant}", variant, text) for variant, text in _TESTAPP_VARIANTS),
    _testapp(f"{TESTAPP}:latest", "healthy", "the generic healthy test service"),
    ImageSpec(
        "sandbox.local/virtual:latest",
        "no process (kwok-style): Running and Ready at once, small fixed usage",
        virtual=True,
    ),
)

DEFAULT_REGISTRY = ImageRegistry(IMAGES)
