"""The sandbox's state directory: what a running sandbox publishes about itself.

`.sandbox/` by default (ignored by git), or `$HARMONYFLOW_SANDBOX_DIR`. The
daemon writes `state.json` once it serves; `kubeconfig` is what every client
uses; `pids/` records every process the kubelets started, so that `down` can
clean up even after the daemon was killed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_DIR = ".sandbox"
ENV_VAR = "HARMONYFLOW_SANDBOX_DIR"


@dataclass(frozen=True)
class SandboxState:
    pid: int
    api_url: str
    kubeconfig: str
    started_at: float
    ingress_url: str = ""
    ingress_sources: str = ""  # where the ingress's connections to the pods come from
    aws_url: str = ""
    amqp_urls: tuple[str, ...] = ()
    prometheus_url: str = ""
    alertmanager_url: str = ""

    def write(self, directory: Path) -> None:
        path = directory / "state.json"
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(self), indent=2))
        scratch.replace(path)


def state_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_DIR).resolve()


def read_state(directory: Path) -> SandboxState | None:
    path = directory / "state.json"
    try:
        data = json.loads(path.read_text())
        data["amqp_urls"] = tuple(data.get("amqp_urls", ()))
        return SandboxState(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def kubeconfig_path(directory: Path) -> Path:
    return directory / "kubeconfig"


def pids_dir(directory: Path) -> Path:
    return directory / "pids"
