"""The recovery journal: every undo is written down before the fault it undoes.

A rollback that never runs (the runner was `kill -9`ed, the machine lost power)
must not leave a zone cordoned or powered off. Each disruptive action first
appends what would undo it, then acts; its rollback marks the undo done.
`resilience recover` replays whatever is still pending. The file is JSON lines,
append-only, so a crash mid-write loses at most the last line.

    >>> entries = [Undo("u1", "uncordon", {"node": "a"}), Done("u1"), Undo("u2", "uncordon")]
    >>> [undo.id for undo in pending(entries)]
    ['u2']
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

UndoKind = Literal[
    "uncordon",
    "start-instances",
    "restore-image",
    "delete-canary",
    "start-db",
    "scale",
    "stop-load",  # a Locust process group (resilience.processes.StartedProcess)
    "delete-load",  # an on-cluster Locust run's objects (resilience.load.cluster_run)
    "stop-fis-experiment",
    "delete-chaos-mesh-object",  # a NetworkChaos or DNSChaos (resilience.chaos.chaosmesh)
]
ENV_VAR = "HARMONYFLOW_RECOVERY_JOURNAL"
DEFAULT_PATH = Path("reports") / "recovery.jsonl"


@dataclass(frozen=True)
class Undo:
    id: str
    kind: UndoKind
    target: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    id: str


Entry = Undo | Done


def pending(entries: Iterable[Entry]) -> list[Undo]:
    """Undos recorded and not yet marked done, oldest first."""
    undos: dict[str, Undo] = {}
    for entry in entries:
        if isinstance(entry, Undo):
            undos[entry.id] = entry
        else:
            undos.pop(entry.id, None)
    return list(undos.values())


def journal_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def read(path: Path | None = None) -> list[Entry]:
    """The journal's entries; a torn last line (a crash mid-write) is skipped."""
    path = path or journal_path()
    entries: list[Entry] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if raw.get("done"):
            entries.append(Done(str(raw["done"])))
        elif raw.get("undo"):
            entries.append(Undo(str(raw["undo"]), raw["kind"], dict(raw.get("target") or {})))
    return entries


def record(kind: UndoKind, target: dict[str, Any], path: Path | None = None) -> str:
    """Write down how to undo what is about to happen; returns the undo's id."""
    undo_id = uuid.uuid4().hex[:12]
    _append({"undo": undo_id, "kind": kind, "target": target}, path)
    return undo_id


def mark_done(undo_id: str, path: Path | None = None) -> None:
    _append({"done": undo_id}, path)


def _append(entry: dict[str, Any], path: Path | None) -> None:
    path = path or journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as journal:
        journal.write(json.dumps(entry, sort_keys=True) + "\n")
        journal.flush()
        os.fsync(journal.fileno())
