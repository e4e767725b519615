"""Running an experiment against a live sandbox (tests/live.py) and reading its journal,
for the live tests of experiments, of FIS and of game days."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.builders import REPO_ROOT
from tests.live import LiveSandbox

EXPERIMENTS = REPO_ROOT / "experiments"


def run_env(live: LiveSandbox, tmp_path: Path) -> dict[str, str]:
    """The sandbox's exports, with the undo journal and the reports of this test's own."""
    return {
        **live.env(),
        **live.exports,
        "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl"),
        "HARMONYFLOW_REPORTS_DIR": str(tmp_path / "reports"),
    }


def journal_of(
    live: LiveSandbox, tmp_path: Path, command: list[str], journal: Path
) -> dict[str, Any]:
    """Run `command` (a `chaos run` or `resilience chaos run` writing `journal`) to its
    end, bounded, and read the journal it wrote."""
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=run_env(live, tmp_path),
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert journal.exists(), done.stderr[-2000:]
    result: dict[str, Any] = json.loads(journal.read_text())
    return result
