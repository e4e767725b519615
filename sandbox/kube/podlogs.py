"""Where container logs live and how they are written: the kubelet/API-server contract.

Like /var/log/pods on a node: `<state>/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`,
one line per record in the CRI format `<RFC3339Nano> <stream> F <text>`. The kubelet
appends; the API server reads, strips the prefix unless `timestamps=true`, and
`previous=true` reads the log of the restart before the current one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

_RECORD = re.compile(r"^(\S+) (stdout|stderr) [FP] (.*)$")


def pod_dir(root: Path, namespace: str, pod: str, uid: str) -> Path:
    return root / "pods" / f"{namespace}_{pod}_{uid}"


def container_dir(root: Path, namespace: str, pod: str, uid: str, container: str) -> Path:
    return pod_dir(root, namespace, pod, uid) / container


def log_file(root: Path, namespace: str, pod: str, uid: str, container: str, restart: int) -> Path:
    return container_dir(root, namespace, pod, uid, container) / f"{restart}.log"


def format_record(stream: str, text: str, moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return f"{stamp} {stream} F {text.rstrip(chr(10))}\n"


def render_records(lines: Iterable[str], timestamps: bool) -> str:
    """Turn stored records into what `kubectl logs` prints."""
    out = []
    for line in lines:
        match = _RECORD.match(line.rstrip("\n"))
        if match is None:
            continue
        stamp, _, text = match.groups()
        out.append(f"{stamp} {text}\n" if timestamps else f"{text}\n")
    return "".join(out)


def restarts_on_disk(root: Path, namespace: str, pod: str, uid: str, container: str) -> list[int]:
    directory = container_dir(root, namespace, pod, uid, container)
    if not directory.is_dir():
        return []
    return sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())
