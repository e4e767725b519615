"""`resilience gameday`: run a plan under load, write the report, exit 0 only if every step passed.

Bad input (a malformed plan, an unknown experiment or profile, a reports
directory that cannot be written, a refused production context, credentials
lacking a permission a step or watch needs) is one line and exit 2, before
anything starts. A finished day exits 0 when every step passed and
1 otherwise; an interrupted one 130, after its rollbacks, `resilience recover` and
the (partial) report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from resilience.errors import InvalidInputError, ResilienceError
from resilience.gameday.plan import DEFAULT_PLAN, load_plan
from resilience.gameday.progress import Progress
from resilience.gameday.run import GamedayOptions, check_writable, exit_code, run_gameday
from resilience.load.certify import PROFILES
from resilience.load.cluster import LOAD_NAMESPACE
from resilience.load.profile import load_profile, resolve_profile
from resilience.paths import PROJECT_ROOT as REPO_ROOT


def add_command(commands: Any) -> None:
    gameday = commands.add_parser(
        "gameday", help="run a game-day plan of experiments under one load and write its report"
    )
    gameday.add_argument(
        "--plan", type=Path, default=DEFAULT_PLAN, help="default: experiments/gameday/standard.yaml"
    )
    gameday.add_argument(
        "--kube-context", default=None, help="default: the local sandbox (started if needed)"
    )
    gameday.add_argument(
        "--allow-production",
        default=None,
        metavar="CONTEXT",
        help="type the production context's name back",
    )
    gameday.add_argument("--reports-dir", type=Path, default=Path("reports"))
    gameday.add_argument("--run-id", default=None, help="default: <UTC time>-<plan name>")
    gameday.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="also notify slack:URL or webhook:URL (off by default; see report/notify.py)",
    )
    gameday.add_argument(
        "--plain", action="store_true", help="plain progress lines even on a terminal"
    )
    gameday.add_argument(
        "--load-on-cluster",
        action="store_true",
        help="run the day's load as deploy/locust's master and workers in pods",
    )
    gameday.add_argument(
        "--load-workers", type=int, help="with --load-on-cluster: worker pods (default 1)"
    )
    gameday.add_argument(
        "--load-namespace", default=LOAD_NAMESPACE, help="with --load-on-cluster: their namespace"
    )
    gameday.set_defaults(run=_run)


def _run(arguments: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from resilience.manifests import render  # noqa: PLC0415 - after the cheap checks
    from resilience.policy import policy_from_manifests  # noqa: PLC0415
    from resilience.report.build import build_report  # noqa: PLC0415
    from resilience.report.notify import notifiers, notify_all  # noqa: PLC0415

    if arguments.load_workers is not None and not arguments.load_on_cluster:
        raise InvalidInputError("--load-workers needs --load-on-cluster (worker pods)")
    if arguments.load_workers is not None and arguments.load_workers < 1:
        raise InvalidInputError(f"--load-workers must be at least 1, got {arguments.load_workers}")
    plan = load_plan(arguments.plan)
    load_profile(resolve_profile(plan.load_profile, PROFILES))
    notifiers(os.environ, tuple(arguments.notify))  # a bad address is bad input, found now
    reports_dir: Path = arguments.reports_dir.resolve()
    check_writable(reports_dir)
    policy = policy_from_manifests(render(REPO_ROOT / "deploy" / "base"))
    options = GamedayOptions(
        plan=plan,
        plan_file=arguments.plan,
        reports_dir=reports_dir,
        policy=policy,
        kube_context=arguments.kube_context,
        allow_production=arguments.allow_production,
        run_id=arguments.run_id,
        load_on_cluster=arguments.load_on_cluster,
        load_workers=arguments.load_workers or 1,
        load_namespace=arguments.load_namespace,
    )
    progress = Progress(live=False if arguments.plain else None)
    record, run_dir = run_gameday(options, progress, _log)
    try:
        built = build_report(run_dir)
    except ResilienceError as error:
        _log(f"gameday: the report could not be built: {error}")
        return exit_code(record, passed=False)
    report = built.report
    for step in report["steps"]:
        ttr = step.get("time_to_recovery_s")
        _log(
            f"gameday: {step['index']}. {step['name']}: {step['verdict']}"
            + (f", recovered in {ttr} s" if ttr is not None else "")
            + "".join(f"\n    {f['kind']}: {f['text']}" for f in step["findings"][:6])
        )
    if record.stopped_at:
        _log(f"gameday: stopped at {record.stopped_at}")
    _log(f"gameday: {report['verdict']}, score {report['score']}/100; report {built.html}")
    for problem in notify_all(report, str(run_dir), tuple(arguments.notify)):
        _log(f"gameday: {problem}")
    return exit_code(record, passed=report["verdict"] == "PASS")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
