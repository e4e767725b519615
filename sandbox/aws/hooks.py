"""The sandbox's side effects, hooked into moto's RDS, EC2 and ElastiCache.

moto answers the wire protocol and keeps the resources; these hooks make the
calls a game day depends on do what AWS does to the sandbox (through
`Effects`), and add what moto lacks:

- RDS RebootDBInstance with ForceFailover: moto ignores the flag; here the
  Multi-AZ failover runs and the standby is promoted.
- RDS DescribeDBInstances: the live status, AZ and SecondaryAvailabilityZone,
  and the endpoint proxy's address.
- RDS DescribeEvents: moto's creation events, plus reboots and failovers.
- RDS Stop/StartDBInstance: `stopping` then `stopped` (the servers shut down,
  storage kept), `starting` then `available` (timings: the sandbox's --rds-* flags).
- ElastiCache TestFailover and DescribeEvents: not in moto; here `CLUSTER
  FAILOVER` on the node group's replica, and the replication group's events.
- ElastiCache DescribeReplicationGroups: the live nodes, primary first.
- EC2 Stop/Start/RebootInstances: besides moto's state change, the node's
  kubelet powers off or on, or the RabbitMQ node of a broker instance
  (`rabbitmq-1..3`, only when the sandbox runs `--with rabbitmq`) stops or starts.
- STS AssumeRoleWithWebIdentity (IRSA): the token is checked as STS checks it
  (`webidentity.py`: signature, issuer, audience, expiry) before moto hands out
  credentials.
- FIS: moto keeps templates and experiments but runs no action; here
  CreateExperimentTemplate and StartExperiment refuse what FIS refuses
  (`fis.check_template`), StartExperiment hands the experiment to the endpoint's
  `FisRunner`, and Get/List/StopExperiment answer with the runner's states.

They patch moto's classes, so they rely on its internals: `check_moto()` names
every attribute it needs and fails loudly when an upgrade removes one, and the
tests drive each hook through boto3. moto is pinned in pyproject.toml.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, ParamSpec, TypeVar

import moto.ec2.models.instances as ec2_instances
from moto.backends import get_backend
from moto.core.responses import ActionResult
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.elasticache.exceptions import ElastiCacheException
from moto.elasticache.models import ElastiCacheBackend
from moto.elasticache.responses import ElastiCacheResponse
from moto.fis.exceptions import FISException
from moto.fis.models import Experiment, FISBackend
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBInstance, RDSBackend
from moto.rds.responses import RDSResponse
from moto.sts.exceptions import STSClientError
from moto.sts.responses import TokenResponse

from sandbox.aws import fis
from sandbox.aws.effects import Effects
from sandbox.aws.fis_runner import FisRunner, with_run
from sandbox.aws.inventory import (
    BROKER_INSTANCE_TYPE,
    CACHE_NODE_TYPE,
    DB_ENGINE,
    DB_ENGINE_VERSION,
    DB_INSTANCE_CLASS,
    POWER_TAG,
    POWER_TAG_CACHE,
    POWER_TAG_DB,
    POWER_TAG_SUBNET,
    AwsEvent,
)
from sandbox.aws.refusal import AwsRefusal

P = ParamSpec("P")
T = TypeVar("T")
SERVICES = ("ec2", "rds", "elasticache", "fis")

# (owner, attribute): what the hooks read or replace. An upgrade of moto that drops
# one of these must fail here, at start, not as a silent no-op in a game day.
MOTO_INTERNALS: tuple[tuple[Any, str], ...] = (
    (RDSResponse, "reboot_db_instance"),
    (RDSResponse, "_get_param"),
    (RDSResponse, "_get_bool_param"),
    (RDSResponse, "backend"),
    (RDSBackend, "describe_db_instances"),
    (RDSBackend, "describe_events"),
    (RDSBackend, "stop_db_instance"),
    (RDSBackend, "start_db_instance"),
    (DBInstance, "address"),
    (ElastiCacheResponse, "elasticache_backend"),
    (ElastiCacheBackend, "describe_replication_groups"),
    (InstanceBackend, "stop_instances"),
    (InstanceBackend, "start_instances"),
    (InstanceBackend, "reboot_instances"),
    (ec2_instances, "random_instance_id"),
    (FISBackend, "create_experiment_template"),
    (FISBackend, "get_experiment_template"),
    (FISBackend, "start_experiment"),
    (FISBackend, "get_experiment"),
    (FISBackend, "stop_experiment"),
    (Experiment, "to_summary_dict"),
    (TokenResponse, "assume_role_with_web_identity"),
    (TokenResponse, "_get_param"),
)


class MotoMismatch(RuntimeError):
    """The installed moto lacks what the hooks patch: pin the tested version."""


def check_moto() -> None:
    missing = [
        f"{getattr(owner, '__name__', owner)}.{name}"
        for owner, name in MOTO_INTERNALS
        if not hasattr(owner, name)
    ]
    if missing:
        raise MotoMismatch(
            "moto no longer has " + ", ".join(missing) + "; the sandbox AWS hooks need them"
            " (pin moto to the version in pyproject.toml)"
        )


class _Hooks:
    """The installed effects; one AWS endpoint per process, as moto's state is global."""

    effects: Effects | None = None
    fis: FisRunner | None = None
    originals: ClassVar[dict[tuple[Any, str], Any]] = {}


def install(effects: Effects) -> None:
    check_moto()
    _Hooks.effects = effects
    if _Hooks.originals:
        return
    _replace(RDSResponse, "reboot_db_instance", _reboot_db_instance)
    _replace(RDSBackend, "describe_db_instances", _wrap_describe_db_instances)
    _replace(RDSBackend, "describe_events", _wrap_describe_rds_events)
    _replace(DBInstance, "address", property(_db_address))
    _replace(RDSBackend, "stop_db_instance", _wrap_db_power("stop_db_instance", on=False))
    _replace(RDSBackend, "start_db_instance", _wrap_db_power("start_db_instance", on=True))
    _replace(ElastiCacheResponse, "test_failover", _test_failover)
    _replace(ElastiCacheResponse, "describe_events", _describe_cache_events)
    _replace(ElastiCacheBackend, "describe_replication_groups", _wrap_describe_groups)
    _replace(InstanceBackend, "stop_instances", _wrap_power("stop_instances", on=False))
    _replace(InstanceBackend, "start_instances", _wrap_power("start_instances", on=True))
    _replace(InstanceBackend, "reboot_instances", _wrap_reboot)
    _replace(FISBackend, "create_experiment_template", _create_experiment_template)
    _replace(FISBackend, "start_experiment", _start_experiment)
    _replace(FISBackend, "get_experiment", _get_experiment)
    _replace(FISBackend, "stop_experiment", _stop_experiment)
    _replace(Experiment, "to_summary_dict", _experiment_summary)
    _replace(TokenResponse, "assume_role_with_web_identity", _assume_role_with_web_identity)


def attach_fis(runner: FisRunner | None) -> None:
    """The runner StartExperiment hands experiments to (the endpoint's, once it serves)."""
    _Hooks.fis = runner


def uninstall() -> None:
    for (owner, name), original in _Hooks.originals.items():
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _Hooks.originals.clear()
    _Hooks.effects = None
    _Hooks.fis = None


def _replace(owner: Any, name: str, replacement: Any) -> None:
    original = owner.__dict__.get(name)
    _Hooks.originals[owner, name] = original
    if callable(replacement) and not isinstance(replacement, property):
        replacement = _bound_original(replacement, original, owner, name)
    setattr(owner, name, replacement)


def _bound_original(replacement: Any, original: Any, owner: Any, name: str) -> Any:
    replacement.__moto_original__ = original if original is not None else getattr(owner, name, None)
    return replacement


def _effects() -> Effects:
    if _Hooks.effects is None:
        raise RuntimeError("the sandbox AWS hooks are not installed")
    return _Hooks.effects


def _call(
    error_type: type[Exception], function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`function`, with a refusal raised as the service's own error (moto finds the
    error's model through the module of the exception's class)."""
    try:
        return function(*args, **kwargs)
    except AwsRefusal as refusal:
        raise error_type(refusal.code, refusal.message) from None


# -- STS ------------------------------------------------------------------------------


def _assume_role_with_web_identity(self: TokenResponse) -> ActionResult:
    """IRSA's exchange: the token is checked as STS checks it (`webidentity.py`) before
    moto hands out the role's temporary credentials."""
    token, role = self._get_param("WebIdentityToken") or "", self._get_param("RoleArn") or ""
    _call(STSClientError, _effects().web_identity, token, role)
    original = _assume_role_with_web_identity.__moto_original__  # type: ignore[attr-defined]
    result: ActionResult = original(self)
    return result


# -- RDS ------------------------------------------------------------------------------


def _reboot_db_instance(self: RDSResponse) -> ActionResult:
    identifier = self._get_param("DBInstanceIdentifier")
    force_failover = bool(self._get_bool_param("ForceFailover", False))
    database = self.backend.describe_db_instances(identifier)[0]
    if force_failover and not database.multi_az:
        raise RDSClientError(
            "InvalidParameterCombination",
            "ForceFailover cannot be specified since the instance is not configured for"
            " either MultiAZ or High Availability",
        )
    effects = _effects()
    if identifier in effects.db_identifiers():
        _call(RDSClientError, effects.reboot_db, identifier, force_failover=force_failover)
        _refresh_db(database)
    return ActionResult({"DBInstance": database})


def _wrap_db_power(name: str, *, on: bool) -> Callable[..., Any]:
    """Stop/StartDBInstance: moto checks the state (from the live view), the sandbox acts."""

    def hooked(self: RDSBackend, db_instance_identifier: str, *args: Any, **kwargs: Any) -> Any:
        original = hooked.__moto_original__  # type: ignore[attr-defined]
        self.describe_db_instances(db_instance_identifier)  # moto checks the live status
        database = original(self, db_instance_identifier, *args, **kwargs)
        effects = _effects()
        if db_instance_identifier in effects.db_identifiers():
            act = effects.start_db if on else effects.stop_db
            _call(RDSClientError, act, db_instance_identifier)
            _refresh_db(database)
        return database

    hooked.__name__ = name
    return hooked


def _wrap_describe_db_instances(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
    databases = _wrap_describe_db_instances.__moto_original__(self, *args, **kwargs)  # type: ignore[attr-defined]
    for database in databases:
        _refresh_db(database)
    return databases


def _refresh_db(database: DBInstance) -> None:
    view = _effects().db_view(database.db_instance_identifier)
    if view is None:
        return
    database.status = view.status
    database.availability_zone = view.zone
    database.secondary_availability_zone = view.secondary_zone  # type: ignore[attr-defined]
    database.sandbox_endpoint = (view.address, view.port)  # type: ignore[attr-defined]
    database.port = view.port


def _db_address(self: DBInstance) -> str:
    endpoint = getattr(self, "sandbox_endpoint", None)
    if endpoint is not None:
        return str(endpoint[0])
    return f"{self.db_instance_identifier}.aaaaaaaaaa.{self.region}.rds.amazonaws.com"


class _RdsEvent:
    """Shaped like moto's `Event`, for the serializer."""

    def __init__(self, event: AwsEvent, arn: str) -> None:
        self.source_identifier = event.source_identifier
        self.source_type = event.source_type
        self.message = event.message
        self.event_categories = _rds_categories(event.message)
        self.source_arn = arn
        self.date = event.date


def _rds_categories(message: str) -> list[str]:
    lowered = message.lower()
    if "failover" in lowered:
        return ["failover"]
    if "restarted" in lowered or "shutdown" in lowered:
        return ["availability"]
    return ["notification"]


def _wrap_describe_rds_events(
    self: RDSBackend,
    source_identifier: str | None = None,
    source_type: str | None = None,
    **rest: Any,
) -> Any:
    original = _wrap_describe_rds_events.__moto_original__  # type: ignore[attr-defined]
    events = list(original(self, source_identifier, source_type, **rest))
    arns = {db.db_instance_identifier: db.arn for db in self.databases.values()}
    for event in _effects().events():
        if event.source_type != "db-instance" or event.source_identifier not in arns:
            continue
        if source_identifier is not None and event.source_identifier != source_identifier:
            continue
        if source_type is not None and source_type != "db-instance":
            continue
        events.append(_RdsEvent(event, arns[event.source_identifier]))
    events.sort(key=lambda event: _aware(event.date))
    return events


def _aware(moment: datetime) -> datetime:
    """moto keeps naive UTC times; the sandbox aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- ElastiCache ----------------------------------------------------------------------


def _test_failover(self: ElastiCacheResponse) -> ActionResult:
    group_id = self._get_param("ReplicationGroupId")
    node_group = self._get_param("NodeGroupId")
    group = self.elasticache_backend.describe_replication_groups(group_id)[0]
    if node_group not in {ng["node_group_id"] for ng in group.node_groups}:
        raise ElastiCacheException(
            "NodeGroupNotFoundFault", f"The node group {node_group} was not found."
        )
    effects = _effects()
    if group_id in effects.cache_groups():
        _call(ElastiCacheException, effects.test_failover, group_id, node_group)
        group = self.elasticache_backend.describe_replication_groups(group_id)[0]
    return ActionResult({"ReplicationGroup": group})


def _describe_cache_events(self: ElastiCacheResponse) -> ActionResult:
    source_identifier = self._get_param("SourceIdentifier")
    source_type = self._get_param("SourceType")
    events = [
        {
            "source_identifier": event.source_identifier,
            "source_type": event.source_type,
            "message": event.message,
            "date": event.date,
        }
        for event in _effects().events()
        if event.source_type in ("replication-group", "cache-cluster")
        and source_identifier in (None, event.source_identifier)
        and source_type in (None, event.source_type)
    ]
    return ActionResult({"Events": events})


def _wrap_describe_groups(self: ElastiCacheBackend, *args: Any, **kwargs: Any) -> Any:
    groups = _wrap_describe_groups.__moto_original__(self, *args, **kwargs)  # type: ignore[attr-defined]
    effects = _effects()
    live = set(effects.cache_groups())
    for group in groups:
        if group.replication_group_id not in live:
            continue
        for node_group in group.node_groups:
            members = effects.cache_members(group.replication_group_id, node_group["node_group_id"])
            node_group["node_group_members"] = [
                {
                    "cache_cluster_id": member.cache_cluster_id,
                    "cache_node_id": "0001",
                    "read_endpoint": {"address": member.address, "port": member.port},
                    "preferred_availability_zone": member.zone,
                }
                for member in members
            ]
        first = effects.cache_members(
            group.replication_group_id, group.node_groups[0]["node_group_id"]
        )
        if first:
            address = effects.cache_configuration_endpoint(group.replication_group_id)
            group.configuration_endpoint = {"address": address, "port": first[0].port}
    return groups


# -- EC2 --------------------------------------------------------------------------------


def _managed(instances: Sequence[Instance]) -> list[str]:
    effects = _effects()
    known = {node.instance_id for node in effects.node_instances()}
    known |= {broker.instance_id for broker in effects.broker_instances()}
    return [instance.id for instance in instances if instance.id in known]


def _wrap_power(name: str, *, on: bool) -> Callable[..., Any]:
    def hooked(self: InstanceBackend, instance_ids: list[str]) -> Any:
        original = hooked.__moto_original__  # type: ignore[attr-defined]
        changed = original(self, instance_ids)
        managed = _managed([instance for instance, _previous in changed])
        if managed:
            effects = _effects()
            (effects.power_on if on else effects.power_off)(managed)
        return changed

    hooked.__name__ = name
    return hooked


def _wrap_reboot(self: InstanceBackend, instance_ids: list[str]) -> Any:
    rebooted = _wrap_reboot.__moto_original__(self, instance_ids)  # type: ignore[attr-defined]
    managed = _managed(rebooted)
    if managed:
        effects = _effects()
        effects.power_off(managed)
        effects.power_on(managed)
    return rebooted


# -- FIS --------------------------------------------------------------------------------


class FisValidationException(FISException):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


def _runner() -> FisRunner:
    if _Hooks.fis is None:
        raise RuntimeError("the sandbox AWS endpoint runs no FIS experiments (no runner)")
    return _Hooks.fis


def _checked(actions: Any, targets: Any, stop_conditions: Any) -> None:
    try:
        fis.check_template(actions, targets, stop_conditions)
    except fis.FisValidation as invalid:
        raise FisValidationException(str(invalid)) from None


def _create_experiment_template(
    self: FISBackend,
    client_token: str | None,
    description: str,
    stop_conditions: list[dict[str, Any]],
    targets: dict[str, Any] | None,
    actions: dict[str, Any],
    role_arn: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    _checked(actions, targets, stop_conditions)
    original = _create_experiment_template.__moto_original__  # type: ignore[attr-defined]
    return original(
        self,
        client_token,
        description,
        stop_conditions,
        targets,
        actions,
        role_arn,
        *args,
        **kwargs,
    )


def _start_experiment(
    self: FISBackend,
    client_token: str | None,
    experiment_template_id: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """moto creates the experiment (or finds it by its client token); the runner runs it."""
    template = self.get_experiment_template(experiment_template_id)
    _checked(template.get("actions"), template.get("targets"), template.get("stopConditions"))
    original = _start_experiment.__moto_original__  # type: ignore[attr-defined]
    answer = original(self, client_token, experiment_template_id, *args, **kwargs)
    runner = _runner()
    runner.begin(answer["id"], template)
    run = runner.run_of(answer["id"])
    return with_run(answer, run) if run is not None else answer


def _get_experiment(self: FISBackend, id: str) -> Any:
    answer = _get_experiment.__moto_original__(self, id)  # type: ignore[attr-defined]
    run = _runner().run_of(id)
    return with_run(answer, run) if run is not None else answer


def _stop_experiment(self: FISBackend, id: str) -> Any:
    runner = _runner()
    if not runner.knows(id):
        return _stop_experiment.__moto_original__(self, id)  # type: ignore[attr-defined]
    runner.stop_experiment(id)
    return self.get_experiment(id)


def _experiment_summary(self: Experiment, tags: dict[str, str] | None = None) -> Any:
    answer = _experiment_summary.__moto_original__(self, tags)  # type: ignore[attr-defined]
    run = _runner().run_of(self.id)
    if run is None:
        return answer
    answer = with_run(answer, run)
    answer.pop("endTime", None)  # not part of a summary
    return answer


# -- the account's resources ----------------------------------------------------------


def reset_backends() -> None:
    """Forget every resource (moto's state is per process; a new endpoint starts empty)."""
    for service in SERVICES:
        get_backend(service).reset()  # type: ignore[call-overload]


@contextlib.contextmanager
def instance_ids(wanted: Sequence[str]) -> Iterator[None]:
    """RunInstances hands out `wanted`, in order: the nodes' instance ids are given."""
    remaining = list(wanted)
    original = ec2_instances.random_instance_id  # type: ignore[attr-defined]

    def next_id() -> str:
        return remaining.pop(0) if remaining else original()

    ec2_instances.random_instance_id = next_id  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ec2_instances.random_instance_id = original  # type: ignore[attr-defined]


def seed(clients: Any, effects: Effects) -> None:
    """Create the account's resources through the API itself (`clients(service)` -> boto3)."""
    ec2 = clients("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for node in effects.node_instances():
        with instance_ids([node.instance_id]):
            ec2.run_instances(
                ImageId=image,
                MinCount=1,
                MaxCount=1,
                InstanceType=node.instance_type,
                Placement={"AvailabilityZone": node.zone},
                PrivateIpAddress=node.private_ip,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in node.tags().items()],
                    }
                ],
            )
        # EKS nodes are replaced by their node group, not terminated by a game day
        ec2.modify_instance_attribute(
            InstanceId=node.instance_id, DisableApiTermination={"Value": True}
        )
    for broker in effects.broker_instances():
        with instance_ids([broker.instance_id]):
            ec2.run_instances(
                ImageId=image,
                MinCount=1,
                MaxCount=1,
                InstanceType=BROKER_INSTANCE_TYPE,
                Placement={"AvailabilityZone": broker.zone},
                PrivateIpAddress=broker.private_ip,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in broker.tags().items()],
                    }
                ],
            )
    # the subnets the instances run in (moto's default subnet of each zone): what FIS's
    # disrupt-connectivity targets by the scenario's tag
    zones = sorted({n.zone for n in effects.node_instances()})
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "default-for-az", "Values": ["true"]},
            {"Name": "availability-zone", "Values": zones},
        ]
    )["Subnets"]
    if subnets:
        ec2.create_tags(
            Resources=[subnet["SubnetId"] for subnet in subnets],
            Tags=[{"Key": POWER_TAG, "Value": POWER_TAG_SUBNET}],
        )
    rds = clients("rds")
    for identifier in effects.db_identifiers():
        rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            Engine=DB_ENGINE,
            EngineVersion=DB_ENGINE_VERSION,
            DBInstanceClass=DB_INSTANCE_CLASS,
            AllocatedStorage=100,
            MultiAZ=True,
            MasterUsername="harmonyflow_admin",
            # moto wants one; the sandbox's real password lives in the overlay's secrets
            MasterUserPassword=secrets.token_urlsafe(18),
            Tags=[{"Key": POWER_TAG, "Value": POWER_TAG_DB}],
        )
    cache = clients("elasticache")
    for group in effects.cache_groups():
        cache.create_replication_group(
            ReplicationGroupId=group,
            ReplicationGroupDescription="HarmonyFlow session cache",
            Engine="redis",
            CacheNodeType=CACHE_NODE_TYPE,
            ClusterMode="enabled",
            NumNodeGroups=3,
            ReplicasPerNodeGroup=1,
            AutomaticFailoverEnabled=True,
            MultiAZEnabled=True,
        )
        arn = cache.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0][
            "ARN"
        ]
        cache.add_tags_to_resource(
            ResourceName=arn, Tags=[{"Key": POWER_TAG, "Value": POWER_TAG_CACHE}]
        )
