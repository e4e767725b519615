"""What a game day leaves in its run directory, and where: the report's only input.

`resilience report RUN_ID` rebuilds every page from these files alone, so the
record holds times and names, never a live object and never a credential:

    reports/<run-id>/
      gameday.json        this record (plan, target description, steps, how it ended)
      plan.yaml           the plan as it was run
      policy.json         the intended policy the run was judged against (deploy/base)
      observe.jsonl       every watch event of the day (resilience.observe codec)
      alerts.json         Prometheus's firing alerts over the run, or why not (report.alerts)
      load/               Locust: timeline.jsonl, chaos.jsonl (the step marks), CSVs, HTML, log
      steps/NN-<name>/    journal.json (chaos run --journal), output.log, the journal control's copy
      index.html, report.json, junit.xml   (built by resilience.report.build)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from resilience.errors import InvalidInputError

FORMAT = "harmonyflow-gameday/v1"
RECORD = "gameday.json"
PLAN_COPY = "plan.yaml"
POLICY = "policy.json"
OBSERVE = "observe.jsonl"
LOAD_DIR = "load"
STEPS_DIR = "steps"

# how a step ended, before the report judges its load and recovery
StepStatus = Literal["passed", "failed", "skipped", "not-run", "interrupted", "timed-out", "error"]


@dataclass(frozen=True)
class StepRecord:
    index: int
    name: str
    experiment: str
    status: StepStatus
    variables: Mapping[str, str] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    journal: str | None = None  # relative to the run directory
    log: str | None = None
    note: str = ""  # why skipped / not run / interrupted
    steady_before: tuple[str, ...] = ()  # problems seen while waiting for a steady state
    recovery_budget: float = 120.0
    timeout: float = 600.0
    expect_alerts: tuple[str, ...] = ()  # the plan's: must fire in fault or recovery


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    plan: str
    plan_description: str
    load_profile: str
    started: float
    ended: float | None
    target: Mapping[str, Any]  # where, described without credentials
    steps: tuple[StepRecord, ...]
    interrupted: bool = False
    stopped_at: str = ""  # "step 3 (az-drain): interrupted by SIGINT" when it did not finish
    load_started: float | None = None
    load_stopped: float | None = None
    problems: tuple[str, ...] = ()  # run-level problems (load did not flow, recover failed...)
    recovered: tuple[str, ...] = ()  # what `resilience recover` did afterwards
    format: str = FORMAT

    def with_step(self, step: StepRecord) -> RunRecord:
        steps = [s for s in self.steps if s.index != step.index] + [step]
        return replace(self, steps=tuple(sorted(steps, key=lambda s: s.index)))


def write_record(run_dir: Path, record: RunRecord) -> Path:
    """Atomically (a crash leaves the previous version, never half a file)."""
    path = run_dir / RECORD
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(asdict(record), indent=2, default=str) + "\n", encoding="utf-8")
    scratch.replace(path)
    return path


def read_record(run_dir: Path) -> RunRecord:
    path = run_dir / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{run_dir}: no {RECORD} in it (not a game-day run)") from None
    except ValueError as error:
        raise InvalidInputError(f"{path}: unreadable: {error}") from None
    return record_from_json(data, str(path))


def record_from_json(data: Mapping[str, Any], source: str = RECORD) -> RunRecord:
    if data.get("format") != FORMAT:
        raise InvalidInputError(f"{source}: not a {FORMAT} record")
    try:
        steps = tuple(
            StepRecord(
                **{
                    **raw,
                    "steady_before": tuple(raw.get("steady_before") or ()),
                    "expect_alerts": tuple(raw.get("expect_alerts") or ()),
                }
            )
            for raw in data["steps"]
        )
        fields = {k: v for k, v in data.items() if k != "steps"}
        fields["problems"] = tuple(fields.get("problems") or ())
        fields["recovered"] = tuple(fields.get("recovered") or ())
        return RunRecord(steps=steps, **fields)
    except (KeyError, TypeError) as error:
        raise InvalidInputError(f"{source}: unreadable record: {error}") from None
