"""The locustfiles run by the real Locust CLI, headless, for the tests that need no sandbox.

Not a test module (it holds no test): tests/load's modules that run Locust against a
local server share it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import psutil

from tests.builders import REPO_ROOT

LOADTESTS = REPO_ROOT / "loadtests"
WS_LOCUSTFILE = LOADTESTS / "sessions_ws.py"
Stats = dict[str, dict[str, int]]


def run_locustfile(
    host: str,
    out: Path,
    env: dict[str, str],
    users: int = 2,
    run_time: str = "6s",
    locustfile: Path = WS_LOCUSTFILE,
    timeout: float = 60,
) -> Stats:
    """Locust's CSV stats of one headless run: 'TYPE name' -> requests, failures."""
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile),
        "--headless", "--host", host, "--users", str(users), "--spawn-rate", str(users),
        "--run-time", run_time, "--csv", str(out / "run"),
        "--timeline-file", str(out / "timeline.jsonl"),
        "--exit-code-on-error", "0", "--only-summary", "--stop-timeout", "2",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=out,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with (out / "run_stats.csv").open() as stream:
        return {
            f"{row['Type']} {row['Name']}": {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
            }
            for row in csv.DictReader(stream)
        }


def count(stats: Stats, entry: str, what: str = "requests") -> int:
    """`what` of `entry`, 0 when the entry never fired."""
    return stats.get(entry, {}).get(what, 0)


def locust_processes() -> list[psutil.Process]:
    """The test process's descendants that run Locust (zombies have exited already)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "locust" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
