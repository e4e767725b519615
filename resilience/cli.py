"""The `resilience` command.

Bad input gets one line on stderr naming the problem and exit code 2, never a
traceback; a check that finds problems lists them and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib.metadata
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from resilience.conformance import check_overlay, check_seed_values
from resilience.errors import InvalidInputError, ResilienceError
from resilience.manifests import render
from resilience.policy import policy_from_manifests

EXIT_FINDINGS = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but its mistakes are one line too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"resilience: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="resilience", description=__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {importlib.metadata.version('harmonyflow-resilience')}",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = commands.add_parser(
        "check-manifests",
        help="render deploy/ and check it against the seed and the overlay rules",
    )
    check.add_argument("deploy_dir", nargs="?", default="deploy", type=Path)
    check.set_defaults(run=_check_manifests)

    policy = commands.add_parser("policy", help="print the intended policy as JSON")
    policy.add_argument("kustomization", nargs="?", default="deploy/base", type=Path)
    policy.set_defaults(run=_print_policy)

    from resilience import sandbox_cli  # noqa: PLC0415 - keeps `sandbox` out of other commands

    sandbox_cli.add_commands(commands)
    from resilience.chaos import cli as chaos_cli  # noqa: PLC0415 - beside its siblings

    chaos_cli.add_commands(commands)
    from resilience.load import certify  # noqa: PLC0415 - the load runner only when asked

    certify.add_command(commands)
    from resilience.gameday import cli as gameday_cli  # noqa: PLC0415 - game days

    gameday_cli.add_command(commands)
    from resilience.report import cli as report_cli  # noqa: PLC0415 - reports

    report_cli.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        status: int = arguments.run(arguments)
    except InvalidInputError as error:
        print(f"resilience: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ResilienceError as error:
        print(f"resilience: {error}", file=sys.stderr)
        return EXIT_FINDINGS
    except KeyboardInterrupt:
        print("resilience: interrupted", file=sys.stderr)
        return 130
    return status


def _check_manifests(arguments: argparse.Namespace) -> int:
    deploy_dir: Path = arguments.deploy_dir
    if not (deploy_dir / "base").is_dir():
        raise InvalidInputError(f"{deploy_dir}: no base/ directory in it")
    base = render(deploy_dir / "base")
    findings = list(check_seed_values(base))
    overlays = sorted(p for p in (deploy_dir / "overlays").glob("*") if p.is_dir())
    for overlay in overlays:
        findings += check_overlay(base, render(overlay))
    for finding in findings:
        print(finding)
    checked = ", ".join(str(p) for p in [deploy_dir / "base", *overlays])
    print(f"{len(findings)} finding(s) in {checked}")
    return EXIT_FINDINGS if findings else 0


def _print_policy(arguments: argparse.Namespace) -> int:
    policy = policy_from_manifests(render(arguments.kustomization))
    print(json.dumps(dataclasses.asdict(policy), indent=2, default=_json_default))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
