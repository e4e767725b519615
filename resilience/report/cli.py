"""`resilience report RUN_ID`: rebuild a game day's report from the files it stored."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from resilience.errors import InvalidInputError


def add_command(commands: Any) -> None:
    report = commands.add_parser("report", help="rebuild a game day's report from its stored data")
    report.add_argument("run_id", help="a directory name under --reports-dir (or a path to one)")
    report.add_argument("--reports-dir", type=Path, default=Path("reports"))
    report.set_defaults(run=_run)


def _run(arguments: argparse.Namespace) -> int:
    from resilience.report.build import build_report  # noqa: PLC0415

    candidate = Path(arguments.run_id)
    run_dir = (
        candidate
        if candidate.is_dir() and "/" in arguments.run_id
        else arguments.reports_dir / arguments.run_id
    )
    if not run_dir.is_dir():
        raise InvalidInputError(f"no run {arguments.run_id!r} in {arguments.reports_dir}")
    built = build_report(run_dir)
    print(f"report: {built.report['verdict']}, score {built.report['score']}/100: {built.html}")
    return 0
