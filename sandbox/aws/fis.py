"""AWS FIS as the sandbox runs it: the template's checks, target selection, the schedule.

moto keeps FIS's templates and experiments but never runs an action: its
experiments walk from `pending` to `completed` on their own. Here an experiment
runs its actions against the sandbox. Everything that decides something is a
pure function of plain data, so the state machine is tested by tables and the
runner (`fis_runner`) only carries out its commands:

- `check_template` answers what CreateExperimentTemplate/StartExperiment refuse
  with a ValidationException (unknown action ids, `startAfter` naming an unknown
  action or making a cycle, durations that are not ISO 8601, targets of the wrong
  resource type).
- `select` picks a target's resources from candidates (ARNs, tags, filters on the
  Describe* output paths, selection mode).
- `begin`, `advance`, `started`, `ended` and `stop_requested` are the experiment's
  state machine: an action starts when every action it names in `startAfter` has
  completed, lasts its `duration` (or `startInstancesAfterDuration`), then its
  effect is undone; the experiment completes when every action has; a stop cancels
  what has not started and undoes what runs (`stopping`, then `stopped`); a failed
  action fails the experiment the same way.

    >>> duration_seconds("PT2M"), duration_seconds("PT1H30M"), duration_seconds("PT0.5S")
    (120.0, 5400.0, 0.5)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ExperimentStatus = Literal[
    "pending", "initiating", "running", "completed", "stopping", "stopped", "failed"
]
ActionStatus = Literal[
    "pending",
    "initiating",
    "running",
    "completed",
    "cancelled",
    "stopping",
    "stopped",
    "failed",
    "skipped",
]
TERMINAL: frozenset[str] = frozenset({"completed", "stopped", "failed"})
ACTION_DONE: frozenset[str] = frozenset({"completed", "skipped"})

# actionId -> (the action's target key, the resource type that target must have)
ACTION_TARGETS: dict[str, tuple[str, str] | None] = {
    "aws:ec2:stop-instances": ("Instances", "aws:ec2:instance"),
    "aws:rds:reboot-db-instances": ("DBInstances", "aws:rds:db"),
    "aws:rds:failover-db-cluster": ("Clusters", "aws:rds:cluster"),
    "aws:elasticache:replicationgroup-interrupt-az-power": (
        "ReplicationGroups",
        "aws:elasticache:replicationgroup",
    ),
    "aws:network:disrupt-connectivity": ("Subnets", "aws:ec2:subnet"),
    "aws:fis:wait": None,
}
# Parts of the AZ power scenario FIS knows and the sandbox does not emulate: a template
# may name them (it is valid on AWS), their action fails saying so.
NOT_EMULATED: frozenset[str] = frozenset(
    {
        "aws:ec2:api-insufficient-instance-capacity-error",
        "aws:ec2:asg-insufficient-instance-capacity-error",
        "aws:ebs:pause-volume-io",
        "aws:arc:start-zonal-autoshift",
    }
)
# Which parameter holds how long the action lasts before its effect is undone.
DURATION_PARAMETERS = ("duration", "startInstancesAfterDuration")
LEGACY_RESOURCE_TYPES = {
    "aws:elasticache:redis-replicationgroup": "aws:elasticache:replicationgroup"
}
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_SELECTION = re.compile(r"^(ALL|COUNT\((\d+)\)|PERCENT\((\d+)\))$")


class FisValidation(ValueError):
    """What FIS answers with a ValidationException; the message says what is wrong."""


def duration_seconds(text: str) -> float:
    """An ISO 8601 duration (`PT2M`, `PT1H30M`, `P1D`) in seconds; FisValidation otherwise."""
    match = _DURATION.match(text or "")
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise FisValidation(f"Invalid duration {text!r}: expected ISO 8601, such as PT2M")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


# -- the template ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionPlan:
    """One action of an experiment, as the schedule needs it."""

    name: str
    action_id: str
    start_after: tuple[str, ...] = ()
    lasts: float = 0.0  # seconds from its start to the undo of its effect; 0: ends at once


def plans_of(actions: Mapping[str, Any]) -> tuple[ActionPlan, ...]:
    """The template's actions as plans (call `check_template` first)."""
    plans = []
    for name, action in actions.items():
        parameters = action.get("parameters") or {}
        lasts = next(
            (duration_seconds(parameters[p]) for p in DURATION_PARAMETERS if p in parameters), 0.0
        )
        plans.append(
            ActionPlan(name, action["actionId"], tuple(action.get("startAfter") or ()), lasts)
        )
    return tuple(plans)


def check_template(
    actions: Mapping[str, Any] | None,
    targets: Mapping[str, Any] | None,
    stop_conditions: Sequence[Mapping[str, Any]] | None,
) -> None:
    """Raise FisValidation for what FIS would refuse in this template."""
    actions, targets = actions or {}, targets or {}
    if not actions:
        raise FisValidation("An experiment template must have at least one action")
    if not stop_conditions:
        raise FisValidation("stopConditions is required (use source 'none' for none)")
    for condition in stop_conditions:
        source = condition.get("source")
        if source == "aws:cloudwatch:alarm":
            if not str(condition.get("value", "")).startswith("arn:"):
                raise FisValidation("A CloudWatch alarm stop condition needs the alarm's ARN")
        elif source != "none":
            raise FisValidation(f"Stop condition source {source!r} is not valid")
    for name, target in targets.items():
        _check_target(name, target)
    for name, action in actions.items():
        _check_action(name, action, actions, targets)
    _check_acyclic(actions)


def _check_target(name: str, target: Mapping[str, Any]) -> None:
    if not target.get("resourceType"):
        raise FisValidation(f"Target {name} has no resourceType")
    selects = ("resourceArns", "resourceTags", "filters", "parameters")
    if not any(target.get(key) for key in selects):
        raise FisValidation(
            f"Target {name} must select resources by resourceArns, resourceTags or filters"
        )
    if target.get("resourceArns") and target.get("resourceTags"):
        raise FisValidation(f"Target {name}: resourceArns and resourceTags cannot be combined")
    if _SELECTION.match(str(target.get("selectionMode", ""))) is None:
        raise FisValidation(
            f"Target {name}: selectionMode must be ALL, COUNT(n) or PERCENT(n),"
            f" not {target.get('selectionMode')!r}"
        )


def _check_action(
    name: str, action: Mapping[str, Any], actions: Mapping[str, Any], targets: Mapping[str, Any]
) -> None:
    action_id = action.get("actionId", "")
    if action_id not in ACTION_TARGETS and action_id not in NOT_EMULATED:
        raise FisValidation(f"Action {name}: actionId {action_id!r} is not a valid action")
    for other in action.get("startAfter") or ():
        if other not in actions:
            raise FisValidation(f"Action {name}: startAfter names unknown action {other!r}")
    parameters = action.get("parameters") or {}
    for parameter in DURATION_PARAMETERS:
        if parameter in parameters:
            try:
                duration_seconds(parameters[parameter])
            except FisValidation as bad:
                raise FisValidation(f"Action {name}, parameter {parameter}: {bad}") from None
    if action_id == "aws:network:disrupt-connectivity" and "duration" not in parameters:
        raise FisValidation(f"Action {name}: {action_id} needs the parameter duration")
    expected = ACTION_TARGETS.get(action_id)
    named = dict(action.get("targets") or {})
    if expected is None:
        if named and action_id not in NOT_EMULATED:
            raise FisValidation(f"Action {name}: {action_id} takes no targets")
        return
    key, resource_type = expected
    if set(named) != {key}:
        raise FisValidation(f"Action {name}: {action_id} needs exactly the target key {key}")
    target = targets.get(named[key])
    if target is None:
        raise FisValidation(f"Action {name}: target {named[key]!r} is not defined")
    actual = LEGACY_RESOURCE_TYPES.get(target["resourceType"], target["resourceType"])
    if actual != resource_type:
        raise FisValidation(
            f"Action {name}: target {named[key]} is of type {actual};"
            f" {action_id} needs {resource_type}"
        )


def _check_acyclic(actions: Mapping[str, Any]) -> None:
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            raise FisValidation("startAfter makes a cycle: " + " -> ".join(cycle))
        visiting.append(name)
        for other in actions[name].get("startAfter") or ():
            visit(other)
        visiting.pop()
        done.add(name)

    for name in actions:
        visit(name)


# -- targets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """A candidate for a target: its ARN, tags, and its Describe* output (for filters)."""

    arn: str
    tags: Mapping[str, str] = field(default_factory=dict)
    view: Mapping[str, Any] = field(default_factory=dict)


def lookup(view: Mapping[str, Any], path: str) -> Any:
    """The value at a filter's dotted path (`Placement.AvailabilityZone`), None if absent."""
    value: Any = view
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def select(target: Mapping[str, Any], candidates: Sequence[Resource]) -> tuple[str, ...]:
    """The ARNs the target resolves to, sorted (FIS picks COUNT/PERCENT at random; the
    sandbox takes the first ones so a run can be repeated)."""
    arns = set(target.get("resourceArns") or ())
    tags = dict(target.get("resourceTags") or {})
    chosen = []
    for resource in candidates:
        if arns and resource.arn not in arns:
            continue
        if any(resource.tags.get(key) != value for key, value in tags.items()):
            continue
        if not all(
            str(lookup(resource.view, f["path"])) in [str(v) for v in f.get("values") or ()]
            for f in target.get("filters") or ()
        ):
            continue
        chosen.append(resource.arn)
    chosen.sort()
    match = _SELECTION.match(str(target.get("selectionMode", "ALL")))
    if match is None or match.group(1) == "ALL":
        return tuple(chosen)
    if match.group(2) is not None:
        return tuple(chosen[: int(match.group(2))])
    return tuple(chosen[: math.ceil(len(chosen) * int(match.group(3)) / 100)])


# -- the experiment's state machine --------------------------------------------------------


@dataclass(frozen=True)
class ActionState:
    status: ActionStatus = "pending"
    reason: str = "Action is pending."
    started: float | None = None
    ended: float | None = None
    ending: bool = False  # its time is up: the undo of its effect has been asked for


@dataclass(frozen=True)
class Run:
    """An experiment's state; `failure` is why it fails once it has wound down."""

    status: ExperimentStatus
    reason: str
    actions: Mapping[str, ActionState]
    ended: float | None = None
    failure: str | None = None
    stopped_by: str | None = None  # the reason a stop condition gave


@dataclass(frozen=True)
class Command:
    """What the runner must do: start an action, or undo its effect."""

    kind: Literal["start", "undo"]
    action: str


Outcome = Literal["ok", "skipped", "failed"]


def begin(plans: Sequence[ActionPlan]) -> Run:
    """A started experiment: `initiating`, every action pending."""
    return Run(
        "initiating", "Experiment is initiating.", {plan.name: ActionState() for plan in plans}
    )


def advance(plans: Sequence[ActionPlan], run: Run, now: float) -> tuple[Run, tuple[Command, ...]]:
    """The run at `now` and what to do: start what may start, undo what has lasted."""
    if run.status in TERMINAL:
        return run, ()
    actions = dict(run.actions)
    commands: list[Command] = []
    if run.status == "stopping":
        for name, state in actions.items():
            if state.status == "pending":
                actions[name] = replace(state, status="cancelled", reason="Action was cancelled.")
            elif state.status == "running":
                actions[name] = replace(state, status="stopping", reason="Action is stopping.")
                commands.append(Command("undo", name))
        busy = any(s.status in ("initiating", "stopping") for s in actions.values())
        if busy or commands:
            return replace(run, actions=actions), tuple(commands)
        if run.failure is not None:
            return replace(run, status="failed", reason=run.failure, actions=actions, ended=now), ()
        reason = run.stopped_by or "Experiment stopped."
        return replace(run, status="stopped", reason=reason, actions=actions, ended=now), ()
    for plan in plans:
        state = actions[plan.name]
        ready = all(actions[other].status in ACTION_DONE for other in plan.start_after)
        if state.status == "pending" and ready:
            actions[plan.name] = replace(
                state, status="initiating", reason="Action is initiating.", started=now
            )
            commands.append(Command("start", plan.name))
        elif (
            state.status == "running"
            and not state.ending
            and state.started is not None
            and now >= state.started + plan.lasts
        ):
            actions[plan.name] = replace(state, ending=True)
            commands.append(Command("undo", plan.name))
    if all(s.status in ACTION_DONE for s in actions.values()):
        return replace(
            run, status="completed", reason="Experiment completed.", actions=actions, ended=now
        ), ()
    return replace(run, status="running", reason="Experiment is running.", actions=actions), tuple(
        commands
    )


def started(
    plans: Sequence[ActionPlan], run: Run, name: str, outcome: Outcome, reason: str, now: float
) -> Run:
    """Record how an action's start went: it runs for its duration (or is done at once),
    was skipped (no targets), or failed, which winds the experiment down as failed."""
    plan = next(p for p in plans if p.name == name)
    state = run.actions[name]
    if outcome == "failed":
        return _failed(run, name, reason, now)
    if outcome == "skipped":
        new = replace(state, status="skipped", reason=reason or "Action was skipped.", ended=now)
    elif plan.lasts > 0:
        new = replace(state, status="running", reason=reason or "Action is running.", started=now)
    else:
        new = replace(state, status="completed", reason="Action completed.", ended=now)
    return replace(run, actions={**run.actions, name: new})


def ended(run: Run, name: str, error: str | None, now: float) -> Run:
    """Record an undo: the action completed (its time was up) or stopped (the experiment
    is stopping); an undo that failed fails the experiment."""
    if error is not None:
        return _failed(run, name, f"undoing it failed: {error}", now)
    state = run.actions[name]
    if state.status == "stopping":
        new = replace(state, status="stopped", reason="Action was stopped.", ended=now)
    else:
        new = replace(state, status="completed", reason="Action completed.", ended=now)
    return replace(run, actions={**run.actions, name: new})


def stop_requested(run: Run) -> Run:
    """StopExperiment: `stopping` until what runs is undone (a finished run stays as it is)."""
    if run.status in TERMINAL or run.status == "stopping":
        return run
    return replace(run, status="stopping", reason="Experiment is stopping.")


def stop_condition_triggered(run: Run, alarm_arn: str) -> Run:
    """A stop condition's alarm fired: the experiment stops as on StopExperiment, what runs
    is undone, and its reason names the alarm (a finished run stays as it is)."""
    if run.status in TERMINAL or run.status == "stopping":
        return run
    return replace(
        run,
        status="stopping",
        reason="Experiment is stopping.",
        stopped_by=f"Experiment stopped by stop condition {alarm_arn} (in ALARM state).",
    )


def stop_condition_unreadable(run: Run, reason: str) -> Run:
    """A stop condition nobody can read: the experiment winds down as failed, saying why."""
    if run.status in TERMINAL:
        return run
    return replace(
        run, status="stopping", reason="Experiment is stopping.", failure=run.failure or reason
    )


def alarm_name(arn: str) -> str:
    """The alarm's name in a CloudWatch alarm ARN.

    >>> alarm_name("arn:aws:cloudwatch:us-west-2:123456789012:alarm:SessionStateHighErrorRate")
    'SessionStateHighErrorRate'
    """
    return arn.split(":alarm:", 1)[-1]


def _failed(run: Run, name: str, reason: str, now: float) -> Run:
    state = replace(run.actions[name], status="failed", reason=reason, ended=now)
    failure = run.failure or f"Action {name} failed: {reason}"
    status: ExperimentStatus = run.status if run.status in TERMINAL else "stopping"
    return replace(
        run,
        status=status,
        reason="Experiment is stopping." if status == "stopping" else run.reason,
        actions={**run.actions, name: state},
        failure=failure,
    )
