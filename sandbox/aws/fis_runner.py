"""The FIS experiments' clock: carries out what `fis.advance` decides, on a loopback thread.

FIS acts through the services' own APIs, and so does this runner: it resolves
targets with Describe* calls to the sandbox's endpoint and stops instances or
reboots the DB instance with the same calls a user would make, so moto's state
and the hooks' effects stay the one truth (a stopped instance reads `stopped`,
its node is off). The one exception is ElastiCache's AZ power interruption,
which has no public API of its own: it goes to `Effects.interrupt_cache_zone`.

What each action does in the sandbox:

- `aws:ec2:stop-instances`: StopInstances of the targets; StartInstances when
  `startInstancesAfterDuration` is up or the experiment stops (without that
  parameter the instances stay stopped, as on AWS).
- `aws:rds:reboot-db-instances`: RebootDBInstance, with ForceFailover when
  `forceFailover` is "true".
- `aws:rds:failover-db-cluster`: the sandbox has DB instances, not clusters; a
  target naming a DB instance fails the action, no cluster found skips or fails it
  per `emptyTargetResolutionMode`.
- `aws:elasticache:replicationgroup-interrupt-az-power`: the node groups whose
  primary is in `availabilityZoneIdentifier` fail over (the primary goes silent,
  its replica is elected); the action lasts its `duration`.
- `aws:network:disrupt-connectivity`: the target subnets' zones are cut off for
  the action's `duration` (`Effects.cut_zone`, realized by the pod network:
  `sandbox.cni.zones`), with scope `all` or `availability-zone` (the sandbox's one
  subnet per zone and no traffic from beyond the VPC make them the same); the other
  scopes (dynamodb, s3, prefix-list ...) fail, saying so.
- the scenario's other actions the sandbox does not emulate: the action fails,
  saying so.
- `aws:fis:wait`: waits its `duration`.

One tick every `TICK_SECONDS`; every API call has the client's timeouts, and
`stop()` joins the thread within a bound. Experiments still running when the
endpoint stops are abandoned with it (the sandbox they act on is going down too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox.aws import fis
from sandbox.aws.effects import Effects
from sandbox.aws.inventory import ACCOUNT_ID, REGION
from sandbox.aws.refusal import AwsRefusal

log = logging.getLogger(__name__)
TICK_SECONDS = 0.1
JOIN_SECONDS = 40.0  # longer than one API call's read timeout
# disrupt-connectivity's scopes the sandbox has: its subnets are one per zone, and no
# traffic comes from beyond the VPC but the node's own
EMULATED_SCOPES = ("all", "availability-zone")
# how often a stop condition's alarm is read (Prometheus evaluates its rules every 5 s)
ALARM_CHECK_SECONDS = 5.0


class ActionFailed(Exception):
    """An action that cannot do what it says; the message is the action's reason."""


class NoTargets(Exception):
    """A target resolved no resource (skipped or failed per emptyTargetResolutionMode)."""


@dataclass
class Experiment:
    """One experiment the runner drives: its template's parts, its state, what to undo."""

    plans: tuple[fis.ActionPlan, ...]
    actions: Mapping[str, Any]
    targets: Mapping[str, Any]
    empty_targets: str  # "fail" | "skip"
    run: fis.Run
    undo: dict[str, Callable[[], None]] = field(default_factory=dict)
    alarms: tuple[str, ...] = ()  # the stop conditions' CloudWatch alarm ARNs
    next_alarm_check: float = 0.0


class FisRunner:
    """Runs the experiments StartExperiment hands it (`clients(service)` -> boto3 client)."""

    def __init__(self, effects: Effects, clients: Callable[[str], Any]) -> None:
        self._effects = effects
        self._clients = clients
        self._lock = threading.Lock()
        self._experiments: dict[str, Experiment] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the hooks call --

    def begin(self, experiment_id: str, template: Mapping[str, Any]) -> None:
        actions = dict(template.get("actions") or {})
        plans = fis.plans_of(actions)
        options = template.get("experimentOptions") or {}
        with self._lock:
            if experiment_id in self._experiments:
                return
            self._experiments[experiment_id] = Experiment(
                plans,
                actions,
                dict(template.get("targets") or {}),
                str(options.get("emptyTargetResolutionMode", "fail")),
                fis.begin(plans),
                alarms=tuple(
                    str(c.get("value"))
                    for c in template.get("stopConditions") or ()
                    if c.get("source") == "aws:cloudwatch:alarm"
                ),
            )

    def knows(self, experiment_id: str) -> bool:
        with self._lock:
            return experiment_id in self._experiments

    def run_of(self, experiment_id: str) -> fis.Run | None:
        with self._lock:
            experiment = self._experiments.get(experiment_id)
            return experiment.run if experiment is not None else None

    def stop_experiment(self, experiment_id: str) -> None:
        with self._lock:
            experiment = self._experiments[experiment_id]
            experiment.run = fis.stop_requested(experiment.run)

    # -- the clock --

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="fis-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)
        self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            with self._lock:
                ids = [i for i, e in self._experiments.items() if e.run.status not in fis.TERMINAL]
            for experiment_id in ids:
                try:
                    self.tick(experiment_id, time.time())
                except Exception:  # the clock must keep going for the other experiments
                    log.exception("FIS experiment %s: tick failed", experiment_id)

    def tick(self, experiment_id: str, now: float) -> None:
        """One step of one experiment: advance it, then carry out the commands."""
        with self._lock:
            experiment = self._experiments[experiment_id]
            check = bool(experiment.alarms) and now >= experiment.next_alarm_check
            if check:
                experiment.next_alarm_check = now + ALARM_CHECK_SECONDS
        if check:
            self._check_stop_conditions(experiment)
        with self._lock:
            experiment.run, commands = fis.advance(experiment.plans, experiment.run, now)
        for command in commands:
            if command.kind == "start":
                self._start(experiment, command.action)
            else:
                self._undo(experiment, command.action)

    def _check_stop_conditions(self, experiment: Experiment) -> None:
        """Before the first action and then every ALARM_CHECK_SECONDS: an alarm in ALARM
        stops the experiment, as FIS does; one that cannot be read fails it."""
        for arn in experiment.alarms:
            try:
                state = self._effects.alarm_state(fis.alarm_name(arn))
            except AwsRefusal as refusal:
                with self._lock:
                    experiment.run = fis.stop_condition_unreadable(
                        experiment.run, f"Stop condition {arn} cannot be evaluated: {refusal}"
                    )
                return
            if state == "ALARM":
                log.warning("FIS stop condition %s is in ALARM: stopping", arn)
                with self._lock:
                    experiment.run = fis.stop_condition_triggered(experiment.run, arn)
                return

    def _start(self, experiment: Experiment, name: str) -> None:
        action = experiment.actions[name]
        try:
            undo = self._act(experiment, action)
            outcome: fis.Outcome = "ok"
            reason = ""
        except NoTargets as empty:
            undo, reason = None, str(empty)
            outcome = "skipped" if experiment.empty_targets == "skip" else "failed"
        except ActionFailed as failure:
            undo, outcome, reason = None, "failed", str(failure)
        except (ClientError, BotoCoreError, AwsRefusal) as error:
            undo, outcome, reason = None, "failed", _describe(error)
        with self._lock:
            if undo is not None:
                experiment.undo[name] = undo
            experiment.run = fis.started(
                experiment.plans, experiment.run, name, outcome, reason, time.time()
            )
        log.info("FIS action %s (%s): %s %s", name, action["actionId"], outcome, reason)

    def _undo(self, experiment: Experiment, name: str) -> None:
        with self._lock:
            undo = experiment.undo.pop(name, None)
        error = None
        try:
            if undo is not None:
                undo()
        except (ClientError, BotoCoreError, AwsRefusal) as failure:
            error = _describe(failure)
        with self._lock:
            experiment.run = fis.ended(experiment.run, name, error, time.time())

    # -- the actions --

    def _act(self, experiment: Experiment, action: Mapping[str, Any]) -> Callable[[], None] | None:
        """Do what the action does; returns its undo (None when there is nothing to undo)."""
        action_id = action["actionId"]
        parameters = dict(action.get("parameters") or {})
        if action_id in fis.NOT_EMULATED:
            raise ActionFailed(f"The sandbox does not emulate {action_id} yet")
        if action_id == "aws:fis:wait":
            return None
        key, _ = fis.ACTION_TARGETS[action_id] or ("", "")
        target_name = action["targets"][key]
        target = experiment.targets[target_name]
        if action_id == "aws:ec2:stop-instances":
            ids = [arn.rsplit("/", 1)[-1] for arn in self._resolve(target_name, target)]
            ec2 = self._clients("ec2")
            ec2.stop_instances(InstanceIds=ids)
            return lambda: ec2.start_instances(InstanceIds=ids)
        if action_id == "aws:rds:reboot-db-instances":
            failover = str(parameters.get("forceFailover", "false")).lower() == "true"
            rds = self._clients("rds")
            for arn in self._resolve(target_name, target):
                rds.reboot_db_instance(
                    DBInstanceIdentifier=arn.rsplit(":", 1)[-1], ForceFailover=failover
                )
            return None
        if action_id == "aws:rds:failover-db-cluster":
            instances = [arn for arn in target.get("resourceArns") or () if ":db:" in arn]
            if instances:
                raise ActionFailed(
                    f"{', '.join(instances)} is a DB instance, not a DB cluster:"
                    " aws:rds:failover-db-cluster fails over Aurora and Multi-AZ DB clusters"
                    " (use aws:rds:reboot-db-instances with forceFailover for a DB instance)"
                )
            rds = self._clients("rds")
            for arn in self._resolve(target_name, target):
                rds.failover_db_cluster(DBClusterIdentifier=arn.rsplit(":", 1)[-1])
            return None
        if action_id == "aws:elasticache:replicationgroup-interrupt-az-power":
            zone = parameters.get("availabilityZoneIdentifier") or (
                target.get("parameters") or {}
            ).get("availabilityZoneIdentifier")
            if not zone:
                raise ActionFailed("availabilityZoneIdentifier is required")
            self._interrupt_cache_zone(self._resolve(target_name, target), str(zone))
            return None
        if action_id == "aws:network:disrupt-connectivity":
            return self._disrupt_connectivity(target_name, target, parameters)
        raise ActionFailed(f"The sandbox does not emulate {action_id}")

    def _disrupt_connectivity(
        self, target_name: str, target: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> Callable[[], None]:
        scope = str(parameters.get("scope", "all"))
        if scope not in EMULATED_SCOPES:
            raise ActionFailed(
                f"The sandbox emulates disrupt-connectivity with scope"
                f" {' or '.join(EMULATED_SCOPES)}, not {scope}"
            )
        zones: list[str] = []

        def reconnect() -> None:
            for zone in zones:
                self._effects.restore_zone(zone)

        try:
            for zone in self._subnet_zones(self._resolve(target_name, target)):
                self._effects.cut_zone(zone)
                zones.append(zone)
        except (ClientError, BotoCoreError, AwsRefusal):
            reconnect()  # a half-done cut is not left behind a failed action
            raise
        return reconnect

    def _subnet_zones(self, arns: Sequence[str]) -> list[str]:
        ids = [arn.rsplit("/", 1)[-1] for arn in arns]
        subnets = self._clients("ec2").describe_subnets(SubnetIds=ids)["Subnets"]
        return sorted({subnet["AvailabilityZone"] for subnet in subnets})

    def _interrupt_cache_zone(self, arns: Sequence[str], zone: str) -> None:
        cache = self._clients("elasticache")
        for arn in arns:
            group_id = arn.rsplit(":", 1)[-1]
            [group] = cache.describe_replication_groups(ReplicationGroupId=group_id)[
                "ReplicationGroups"
            ]
            node_groups = primaries_in_zone(group, zone)
            if node_groups:
                self._effects.interrupt_cache_zone(group_id, node_groups)

    def _resolve(self, name: str, target: Mapping[str, Any]) -> tuple[str, ...]:
        resource_type = fis.LEGACY_RESOURCE_TYPES.get(
            target["resourceType"], target["resourceType"]
        )
        arns = fis.select(target, self._candidates(resource_type))
        if not arns:
            raise NoTargets(f"Target {name} resolved no {resource_type} resource")
        return arns

    def _candidates(self, resource_type: str) -> list[fis.Resource]:
        """Every resource of the type, with its tags and Describe* output."""
        if resource_type == "aws:ec2:instance":
            answer = self._clients("ec2").describe_instances()
            return [
                fis.Resource(
                    f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/{i['InstanceId']}",
                    _tags(i.get("Tags")),
                    i,
                )
                for r in answer["Reservations"]
                for i in r["Instances"]
            ]
        if resource_type == "aws:ec2:subnet":
            return [
                fis.Resource(
                    f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:subnet/{subnet['SubnetId']}",
                    _tags(subnet.get("Tags")),
                    subnet,
                )
                for subnet in self._clients("ec2").describe_subnets()["Subnets"]
            ]
        if resource_type == "aws:rds:db":
            return [
                fis.Resource(db["DBInstanceArn"], _tags(db.get("TagList")), db)
                for db in self._clients("rds").describe_db_instances()["DBInstances"]
            ]
        if resource_type == "aws:rds:cluster":
            return [
                fis.Resource(c["DBClusterArn"], _tags(c.get("TagList")), c)
                for c in self._clients("rds").describe_db_clusters()["DBClusters"]
            ]
        if resource_type == "aws:elasticache:replicationgroup":
            cache = self._clients("elasticache")
            groups = cache.describe_replication_groups()["ReplicationGroups"]
            return [
                fis.Resource(
                    g["ARN"],
                    _tags(cache.list_tags_for_resource(ResourceName=g["ARN"]).get("TagList")),
                    g,
                )
                for g in groups
            ]
        return []


def primaries_in_zone(group: Mapping[str, Any], zone: str) -> list[str]:
    """The node groups of a DescribeReplicationGroups entry whose primary (listed first by
    the sandbox) is in `zone`: those an AZ power interruption fails over."""
    found = []
    for node_group in group.get("NodeGroups") or ():
        members = node_group.get("NodeGroupMembers") or []
        if members and members[0].get("PreferredAvailabilityZone") == zone:
            found.append(str(node_group["NodeGroupId"]))
    return found


def _tags(tags: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or ()}


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        failure = error.response.get("Error", {})
        return f"{failure.get('Code')}: {failure.get('Message')}"
    if isinstance(error, AwsRefusal):
        return f"{error.code}: {error.message}"
    return str(error)


def with_run(experiment: dict[str, Any], run: fis.Run) -> dict[str, Any]:
    """A GetExperiment/StartExperiment answer with the runner's states (moto's own walk
    from pending to completed is not what happens)."""
    actions = dict(experiment.get("actions") or {})
    for name, state in run.actions.items():
        if name not in actions:
            continue
        entry = {k: v for k, v in actions[name].items() if k not in ("startTime", "endTime")}
        entry["state"] = {"status": state.status, "reason": state.reason}
        if state.started is not None and state.status != "initiating":
            entry["startTime"] = state.started
        if state.ended is not None:
            entry["endTime"] = state.ended
        actions[name] = entry
    answer = {**experiment, "state": {"status": run.status, "reason": run.reason}}
    if "actions" in experiment:
        answer["actions"] = actions
    if run.ended is not None:
        answer["endTime"] = run.ended
    else:
        answer.pop("endTime", None)
    return answer
