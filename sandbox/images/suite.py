"""`ghcr.io/harmonyflow/resilience:*`: the suite's own image, run as its Dockerfile builds it.

The Dockerfile installs the lock file's packages and the project (editable, at
/app) into the image's Python, puts kubectl on PATH, and sets WORKDIR /app,
`ENV HOME=/tmp PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1`,
`ENTRYPOINT ["resilience"]` and `CMD ["gameday", "--plain"]`. The sandbox has all
of that on the host already: the venv it runs from (the same lock file) and the
host's kubectl. So the container's root (`sandbox/kube/kubelet/mounts.py`) gets
the project directory bound read-only at /app, its PATH starts with the venv's
scripts directory (`resilience`, `python`, `chaos`, `locust`), then the usual
directories (`/usr/bin/kubectl`), and PYTHONPATH=/app makes the project at /app
the `resilience` package whichever checkout the venv was installed from. The
container's argv (`registry.container_argv`: `command` replaces the ENTRYPOINT,
`args` the CMD) is executed as it is, found through that PATH inside the root, as
a runtime executes it: `/app/deploy/gameday/in-cluster.sh` is the project's own
script. Any tag runs this checkout's version.

Left out: the image's user (uid 10001): the sandbox's pods run as root, so the
image's own files are read-only to the container instead of merely not its own.

    >>> launch(["resilience", "--version"], {})
    ['resilience', '--version']
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

ENTRYPOINT = ("resilience",)
CMD = ("gameday", "--plain")
WORKDIR = "/app"
SCRIPTS = Path(sysconfig.get_path("scripts"))  # the venv's bin: resilience, python, chaos
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV = (
    ("PATH", f"{SCRIPTS}:{SYSTEM_PATH}"),
    ("HOME", "/tmp"),
    ("PYTHONUNBUFFERED", "1"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONPATH", WORKDIR),
)


class NoCommandError(FileNotFoundError):
    """An empty argv (an empty `command` and no ENTRYPOINT): nothing to execute."""

    def __init__(self) -> None:
        super().__init__("no command specified")


def launch(words: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The container's argv, executed as it is in the container's root."""
    if not words:
        raise NoCommandError
    return list(words)
