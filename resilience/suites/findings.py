"""Findings: what a resilience test learned that is not a failure of the suite's limits.

Some behaviours are known limitations of the intended configuration rather than
broken limits -- a zone drain leaving the replacement Pending because
`whenUnsatisfiable: DoNotSchedule` with `maxSkew: 1` counts the cordoned zone.
A test records them here and passes: the finding lands in
`reports/findings.json` (a JSON list, one object per finding, appended across
tests and runs) and in pytest's warnings summary, where the on-call engineer
and the game-day report read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FINDINGS_FILE = "findings.json"


class ResilienceFinding(UserWarning):
    """Shown in pytest's warnings summary; the details are in reports/findings.json."""


@dataclass(frozen=True)
class Finding:
    test: str  # the pytest node id
    title: str  # one line: what was found
    detail: str  # what was observed, with numbers and times
    target: str  # which cluster and namespace
    wall: float

    def summary(self) -> str:
        return f"{self.title}: {self.detail}"


def record_finding(path: Path, finding: Finding) -> Path:
    """Append `finding` to the JSON list at `path` (created when missing, rewritten whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: list[Any] = []
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            existing = loaded if isinstance(loaded, list) else []
        except ValueError:
            existing = []
    existing.append(asdict(finding))
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
    scratch.replace(path)
    return path


def new_finding(test: str, title: str, detail: str, target: str) -> Finding:
    return Finding(test=test, title=title, detail=detail, target=target, wall=time.time())
