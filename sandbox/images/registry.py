"""The sandbox's image registry: image reference -> what a container of it runs.

A table, one line of documentation per image (kwok's stages as data): the
kubelet looks a reference up when it "pulls", and an unknown reference fails
the way a missing tag fails on EKS (`ErrImagePull`, then `ImagePullBackOff`).
Real images are local processes (`argv`); virtual ones run nothing and are
Running and Ready at once, so that 1,000 pods fit on one machine.

Public images that pods people and clients create are stand-ins (`standin`),
matched for any tag, never the real binaries (the sandbox runs as root):

- `registry.k8s.io/pause:*`: waits for SIGTERM, then exits 0;
- `nginx:*`: nginx's welcome page over HTTP on the pod IP, port 80;
- `busybox:*`, `python:*` (also `docker.io/library/...`): the container's
  `command`/`args` through the safe runner `sandbox.images.shell` (a small sh:
  `;`, `&&`, `||`, quotes, `$VAR`, sleep/echo/cat/env/printenv/exit/true/false/
  hostname/date/pwd/test; anything else exits 127 "not found"); `python -c CODE`
  is evaluated by `sandbox.images.pysnippet` (print, sys.exit, time.sleep,
  os.environ reads), not by a real interpreter, which could not be isolated.

Two images run their real program (`launcher`), already installed and pinned in the
venv, in a root of their own (the host's filesystem through binds, see below):

- `locustio/locust:*` (`docker.io/locustio/locust:...`), the project's load
  generator: `python -m locust` of the venv (Locust 2.47.0 for any tag) with the
  container's `command`/`args` as the image's ENTRYPOINT `["locust"]` gets them and
  the pod's env (`LOCUST_*` from an `envFrom` ConfigMap), started in the image's
  WORKDIR `/home/locust` (made in the container's root); its web UI and master port
  are bound to the pod IP, never to 0.0.0.0 (`sandbox.images.locust` says how and
  why). Locustfiles come from a ConfigMap volume (`/mnt/locust`, as `deploy/locust`
  mounts them).
- `ghcr.io/harmonyflow/resilience:*`, the suite's own image (the scheduled game day,
  `deploy/gameday`): the project at /app, WORKDIR /app, ENTRYPOINT `["resilience"]`,
  CMD `["gameday", "--plain"]`, the venv's scripts and the host's kubectl on PATH,
  HOME=/tmp (`sandbox.images.suite` says how it matches the Dockerfile).

Volumes (configMap, secret, emptyDir, downwardAPI, projected) are mounted in each
container's own mount namespace (`sandbox/kube/kubelet/mounts.py`). A real-process
container (the session-state, testapp, locust and resilience images) gets a root of
its own there: a tmpfs with the host's top-level entries bound back, its volumes at
any mountPath (/reports, /var/run/secrets/...) and `readOnlyRootFilesystem`
honoured, nothing created on the host. A stand-in sees its volumes under its own
directory, where its `cat` reads.

The session-state tags run the reference service (`sandbox.images.session_state`),
which needs PostgreSQL and Redis (`DB_URL`, `REDIS_URL`); the `sandbox.local/testapp`
tags run a stand-in with the same probes and no dependencies.

    >>> DEFAULT_REGISTRY.lookup("ghcr.io/harmonyflow/session-state:crash").args
    ('--fault', 'crash')
    >>> DEFAULT_REGISTRY.lookup("sandbox.local/testapp:crash").description
    'exits with code 1 two seconds after it starts: CrashLoopBackOff'
    >>> DEFAULT_REGISTRY.lookup("busybox:1.36").reference
    'docker.io/library/busybox:1.36'
    >>> DEFAULT_REGISTRY.lookup("locustio/locust:2.31.0").workdir
    '/home/locust'
    >>> DEFAULT_REGISTRY.lookup("ghcr.io/harmonyflow/resilience:0.1.0").argv({}, (), ("--version",))
    ['resilience', '--version']
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.images import locust, suite
from sandbox.images.session_state.faults import FAULT_TABLE, HEALTHY_TAGS, image_env

SESSION_STATE = "ghcr.io/harmonyflow/session-state"
SESSION_STATE_MODULE = "sandbox.images.session_state"
TESTAPP = "sandbox.local/testapp"
TESTAPP_MODULE = "sandbox.images.testapp"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
STANDINS_MODULE = "sandbox.images.standins"
Launcher = Callable[[Sequence[str], Mapping[str, str]], list[str]]
# Runs a module from the repository under `python -I` (no PYTHON* variables in the pod).
_BOOTSTRAP = (
    "import runpy, sys; sys.path.insert(0, sys.argv[1]); module = sys.argv[2]; "
    "sys.argv = [module, *sys.argv[3:]]; runpy.run_module(module, run_name='__main__')"
)


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
    # A stand-in for a public image ("pause", "nginx", "shell"), matched for any tag.
    standin: str = ""
    entrypoint: tuple[str, ...] = ()  # the image's ENTRYPOINT and CMD, for stand-ins
    cmd: tuple[str, ...] = ()
    # A real program of the venv run as the image runs it (locust), matched for any tag:
    # (the container's argv as a runtime resolves it, the process env) -> the process.
    launcher: Launcher | None = None
    workdir: str = ""  # the image's WORKDIR, made in the container's root when missing
    # The image's own files, bound read-only into the container's root: (path, host dir)
    content: tuple[tuple[str, str], ...] = ()

    @property
    def any_tag(self) -> bool:
        return bool(self.standin) or self.launcher is not None

    def argv(
        self,
        pod_env: Mapping[str, str],
        command: Sequence[str] = (),
        args: Sequence[str] = (),
        root: Path | None = None,
    ) -> list[str]:
        """The process to start; `$(VAR)` in args expands from the container's env.

        Stand-ins run the container's `command`/`args` (`container_argv`) with
        `root` as the only directory their `cat` may read.
        """
        if self.virtual:
            raise ValueError(f"{self.reference} is virtual: it runs no process")
        if self.launcher is not None:
            return self.launcher(container_argv(self.entrypoint, self.cmd, command, args), pod_env)
        if self.standin:
            words = container_argv(self.entrypoint, self.cmd, command, args)
            return [
                *(sys.executable, "-I", "-u", "-c", _BOOTSTRAP, str(REPO_ROOT)),
                *(STANDINS_MODULE, self.standin, str(root or ""), "--"),
                *words,  # the kubelet expanded `$(VAR)` in command/args already
            ]
        return [sys.executable, "-m", self.module, *(_expand(a, pod_env) for a in self.args)]

    def image_env(self) -> dict[str, str]:
        """The image's own ENV (as a Dockerfile would set it); the container's env wins."""
        if self.any_tag:
            return dict(self.env)
        return {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **dict(self.env)}

    @property
    def image_id(self) -> str:
        """`repo@sha256:<digest>`, stable per reference, as containerd reports it."""
        if "@" in self.reference:  # pulled by digest: that digest is the image's
            return self.reference
        repository = _repository(self.reference)
        digest = hashlib.sha256(self.reference.encode()).hexdigest()
        return f"{repository}@sha256:{digest}"


class ImageRegistry:
    """Lookup by reference; `docker.io/library/` and `:latest` are implied as upstream."""

    def __init__(self, images: Iterable[ImageSpec] | None = None) -> None:
        self._images = {image.reference: image for image in (IMAGES if images is None else images)}

    def lookup(self, reference: str) -> ImageSpec:
        normalized = normalize(reference)
        image = self._images.get(normalized)
        if image is not None:
            return image
        repository = _repository(normalized)
        for candidate in self._images.values():
            if candidate.any_tag and _repository(candidate.reference) == repository:
                return dataclasses.replace(candidate, reference=normalized)
        raise ImageNotFoundError(reference)

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


def container_argv(
    entrypoint: Sequence[str], cmd: Sequence[str], command: Sequence[str], args: Sequence[str]
) -> list[str]:
    """What a container runtime runs: `command` replaces ENTRYPOINT (and drops CMD),
    `args` replaces CMD.

    >>> container_argv((), ("sh",), (), ()), container_argv(("nginx",), ("-g",), (), ("-v",))
    (['sh'], ['nginx', '-v'])
    >>> container_argv(("nginx",), ("-g",), ("sh", "-c"), ())
    ['sh', '-c']
    """
    if command:
        return [*command, *args]
    return [*entrypoint, *(args or cmd)]


def _repository(reference: str) -> str:
    """`docker.io/library/nginx:1.27` and `...@sha256:...` -> `docker.io/library/nginx`."""
    name = reference.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if _has_tag(name) else name


def _has_tag(reference: str) -> bool:
    return ":" in reference.rsplit("/", 1)[-1]


def _expand(text: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _testapp(reference: str, variant: str, description: str) -> ImageSpec:
    return ImageSpec(reference, description, TESTAPP_MODULE, ("--variant", variant))


def _session_state(tag: str, description: str, fault: str = "") -> ImageSpec:
    args = ("--fault", fault) if fault else ()
    env = (("SERVICE_VERSION", tag), *image_env(tag))
    return ImageSpec(f"{SESSION_STATE}:{tag}", description, SESSION_STATE_MODULE, args, env=env)


_RELEASES = {
    "1.0.0": "the seed's image: the reference session-state service (PostgreSQL + Redis)",
    "1.0.1": "the reference service; a patch release to roll out",
    "1.1.0": "the reference service; a minor release to roll out",
    "1.2.0": "the reference service with a max connection age: each WebSocket is closed with"
    " 1012 after WS_MAX_AGE_SECONDS (60, +/-10 %), so sockets spread over new pods",
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

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STANDINS: tuple[ImageSpec, ...] = (
    ImageSpec(
        "registry.k8s.io/pause:3.10",
        "stand-in, any tag: sleeps until SIGTERM, then exits 0",
        standin="pause",
        size_bytes=320_368,
        entrypoint=("/pause",),
    ),
    ImageSpec(
        "docker.io/library/nginx:latest",
        "stand-in, any tag: nginx's welcome page on the pod IP, port 80",
        standin="nginx",
        size_bytes=72_195_292,
        env=(("PATH", _PATH), ("NGINX_VERSION", "1.27.5")),
        entrypoint=("/docker-entrypoint.sh",),
        cmd=("nginx", "-g", "daemon off;"),
    ),
    ImageSpec(
        "docker.io/library/busybox:latest",
        "stand-in, any tag: command/args through the safe runner (sandbox.images.shell)",
        standin="shell",
        size_bytes=2_166_802,
        env=(("PATH", _PATH),),
        cmd=("sh",),
    ),
    ImageSpec(
        "docker.io/library/python:latest",
        "stand-in, any tag: command/args through the safe runner; python -c is pysnippet",
        standin="shell",
        size_bytes=51_234_304,
        env=(("PATH", _PATH), ("LANG", "C.UTF-8"), ("PYTHON_VERSION", "3.13.5")),
        cmd=("python3",),
    ),
)

LOCUST = ImageSpec(
    "docker.io/locustio/locust:2.47.0",
    "any tag: the venv's real Locust with the pod's args; web UI and master port on the pod IP",
    size_bytes=97_301_504,
    env=(("PATH", _PATH), ("LANG", "C.UTF-8"), ("PYTHONUNBUFFERED", "1")),
    entrypoint=locust.ENTRYPOINT,
    launcher=locust.launch,
    workdir=locust.WORKDIR,
)

PROJECT_VERSION = "0.1.0"  # pyproject.toml's; tests/sandbox/images/test_suite_image.py checks it
RESILIENCE = ImageSpec(
    f"ghcr.io/harmonyflow/resilience:{PROJECT_VERSION}",
    "any tag: the suite itself, as its Dockerfile builds it (the project at /app)",
    size_bytes=412_090_368,
    env=suite.ENV,
    entrypoint=suite.ENTRYPOINT,
    cmd=suite.CMD,
    launcher=suite.launch,
    workdir=suite.WORKDIR,
    content=((suite.WORKDIR, str(REPO_ROOT)),),
)

IMAGES: tuple[ImageSpec, ...] = (
    *(_session_state(tag, _RELEASES[tag]) for tag in HEALTHY_TAGS),
    *(_session_state(f.name, f.description, f.name) for f in FAULT_TABLE),
    *(_testapp(f"{TESTAPP}:{variant}", variant, text) for variant, text in _TESTAPP_VARIANTS),
    _testapp(f"{TESTAPP}:latest", "healthy", "the generic healthy test service"),
    *STANDINS,
    LOCUST,
    RESILIENCE,
    ImageSpec(
        "sandbox.local/virtual:latest",
        "no process (kwok-style): Running and Ready at once, small fixed usage",
        virtual=True,
    ),
)

DEFAULT_REGISTRY = ImageRegistry(IMAGES)
