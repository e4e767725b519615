"""`resilience chaos run | validate` and `resilience recover`."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

from resilience.chaos import runner
from resilience.chaos.verdict import failures
from resilience.errors import InvalidInputError

ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def add_commands(commands: Any) -> None:
    chaos = commands.add_parser("chaos", help="run Chaos Toolkit experiments, strictly")
    actions = chaos.add_subparsers(dest="chaos_command", required=True)
    run = actions.add_parser(
        "run", help="run one experiment; fail on any failed action or deviation"
    )
    run.add_argument("experiment", type=Path)
    run.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--var-file", action="append", default=[], type=Path)
    run.add_argument("--kube-context", default=None)
    run.add_argument(
        "--allow-production",
        default=None,
        metavar="CONTEXT",
        help="run against a production-looking context: type its name back here",
    )
    run.add_argument("--journal", type=Path, default=None, help="also write the journal here")
    run.add_argument(
        "--hypothesis-frequency",
        type=float,
        default=runner.DEFAULT_HYPOTHESIS_FREQUENCY,
        metavar="SECONDS",
    )
    run.add_argument(
        "--dead-man-seconds",
        type=float,
        default=runner.DEFAULT_DEAD_MAN_SECONDS,
        metavar="SECONDS",
        help="stop the fault and roll back once the API server (AWS, Prometheus) has not"
        " answered for this long (default %(default)g; 0: off)",
    )
    run.add_argument(
        "--stop-on-alert",
        dest="stop_alerts",
        action="append",
        default=[],
        metavar="ALERT",
        help="a Prometheus alert that stops the fault when it fires (repeatable)",
    )
    run.set_defaults(run=_run)
    validate = actions.add_parser("validate", help="check experiments without running them")
    validate.add_argument("experiments", type=Path, nargs="+")
    validate.set_defaults(run=_validate)
    recover = commands.add_parser(
        "recover", help="undo what interrupted experiments left behind (recovery journal)"
    )
    recover.add_argument("--kube-context", default=None)
    recover.add_argument(
        "--journal", type=Path, default=None, help="default: reports/recovery.jsonl"
    )
    recover.set_defaults(run=_recover)


def _run(arguments: argparse.Namespace) -> int:
    if arguments.hypothesis_frequency <= 0:
        raise InvalidInputError("--hypothesis-frequency must be positive")
    if not arguments.dead_man_seconds >= 0:
        raise InvalidInputError("--dead-man-seconds must be 0 (off) or positive")
    for alert in arguments.stop_alerts:
        if not ALERT_NAME.match(alert):
            raise InvalidInputError(f"--stop-on-alert {alert!r}: expected an alert name")
    for var_file in arguments.var_file:
        if not var_file.is_file():
            raise InvalidInputError(f"--var-file {var_file}: no such file")
    chaos_run = runner.ChaosRun(
        experiment=arguments.experiment,
        variables=runner.parse_variables(arguments.var),
        var_files=tuple(arguments.var_file),
        kube_context=arguments.kube_context,
        allow_production=arguments.allow_production,
        journal_path=arguments.journal,
        hypothesis_frequency=arguments.hypothesis_frequency,
        dead_man_seconds=arguments.dead_man_seconds,
        stop_alerts=tuple(arguments.stop_alerts),
    )
    experiment = runner.prepare(chaos_run)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    with runner.target_environment(chaos_run):
        where = runner.check_target(experiment, chaos_run)
        runner.check_permissions(experiment, chaos_run, _warn)
        print(f"chaos: {experiment['title']} against {where}", file=sys.stderr)
        journal = runner.execute(experiment, chaos_run)
    reasons = failures(journal)
    for reason in reasons:
        print(f"chaos: FAILED: {reason}")
    if not reasons:
        print(f"chaos: passed: {experiment['title']}")
    return 1 if reasons else 0


def _warn(line: str) -> None:
    print(f"chaos: preflight: {line}", file=sys.stderr)


def _validate(arguments: argparse.Namespace) -> int:
    for path in arguments.experiments:
        runner.load(path)
        print(f"chaos: valid: {path}")
    return 0


def _recover(arguments: argparse.Namespace) -> int:
    from resilience.chaos.undo import recover  # noqa: PLC0415

    with runner.target_environment(runner.ChaosRun(Path("-"), kube_context=arguments.kube_context)):
        for line in recover(arguments.journal):
            print(f"recover: {line}")
    return 0
