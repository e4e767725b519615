"""What an AWS call does to the sandbox: the bridge from moto's threads to the control plane.

moto answers on its own server threads; the sandbox's RDS pair, Redis cluster
and kubelets live on the control plane's event loop. Every effect therefore
runs on that loop (`run_coroutine_threadsafe`) and the API call waits for the
part that AWS does before answering: the status change, not the whole
failover. A refusal the service would give (`InvalidDBInstanceState`, ...) is
raised as `AwsRefusal` with AWS's error code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sandbox.aws.inventory import AwsEvent, BrokerInstance, CacheMember, DbView, NodeInstance
from sandbox.aws.refusal import AwsRefusal
from sandbox.aws.webidentity import role_account, web_identity_claims
from sandbox.cni.podnetwork import PodNetwork
from sandbox.cni.zones import ZoneIsolation
from sandbox.infra.backing import BackingServices
from sandbox.infra.monitoring import Monitoring
from sandbox.infra.rds_status import InvalidDBInstanceState, RdsStatus
from sandbox.infra.redis_cluster import Role
from sandbox.kube.auth.tokens import TokenIssuer
from sandbox.kube.clock import Clock
from sandbox.kube.kubelet.kubelet import Kubelet, NodeConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 30.0
PROMETHEUS_TIMEOUT_SECONDS = 5.0


class Effects(Protocol):
    """The sandbox behind the AWS resources; a recording fake stands in for it in tests."""

    def node_instances(self) -> Sequence[NodeInstance]: ...
    def broker_instances(self) -> Sequence[BrokerInstance]: ...
    def db_identifiers(self) -> Sequence[str]: ...
    def db_view(self, identifier: str) -> DbView | None: ...
    def reboot_db(self, identifier: str, *, force_failover: bool) -> None: ...
    def stop_db(self, identifier: str) -> None: ...
    def start_db(self, identifier: str) -> None: ...
    def cache_groups(self) -> Sequence[str]: ...
    def cache_members(self, group: str, node_group: str) -> Sequence[CacheMember]: ...
    def cache_configuration_endpoint(self, group: str) -> str: ...
    def test_failover(self, group: str, node_group: str) -> None: ...
    def interrupt_cache_zone(self, group: str, node_groups: Sequence[str]) -> None: ...
    def events(self) -> Sequence[AwsEvent]: ...
    def power_off(self, instance_ids: Sequence[str]) -> None: ...
    def power_on(self, instance_ids: Sequence[str]) -> None: ...
    def cut_zone(self, zone: str) -> None: ...
    def restore_zone(self, zone: str) -> None: ...
    def alarm_state(self, name: str) -> str: ...
    def web_identity(self, token: str, role_arn: str) -> Mapping[str, Any]: ...


def _prometheus(url: str) -> dict[str, Any]:
    """One Prometheus HTTP API answer (bounded); an unreachable one is AWS's InternalFailure."""
    try:
        with urllib.request.urlopen(url, timeout=PROMETHEUS_TIMEOUT_SECONDS) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError) as error:
        raise AwsRefusal("InternalFailure", f"Prometheus did not answer {url}: {error}") from None
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class SandboxParts:
    """The parts of a running sandbox that AWS calls act on (`sandbox.daemon` hands them
    in); the backing services, monitoring and the pod network may be off."""

    nodes: Sequence[NodeConfig]
    kubelets: Mapping[str, Kubelet]  # filled as the kubelets start
    clock: Clock
    tokens: TokenIssuer  # the API server's ServiceAccount token signer
    backing: BackingServices | None
    monitoring: Monitoring | None
    pod_network: PodNetwork | None
    zone_isolation: ZoneIsolation


class ControlPlaneEffects:
    """`Effects` on a running sandbox's parts."""

    def __init__(self, plane: SandboxParts, loop: asyncio.AbstractEventLoop) -> None:
        self._plane = plane
        self._loop = loop
        self._background: set[asyncio.Task[Any]] = set()
        self._failing_over: set[str] = set()

    # -- EC2 --

    def node_instances(self) -> Sequence[NodeInstance]:
        return [
            NodeInstance(
                node.instance_id,
                node.zone,
                node.internal_ip,
                node.name,
                node.instance_type,
                node.nodegroup,
            )
            for node in self._plane.nodes
        ]

    def broker_instances(self) -> Sequence[BrokerInstance]:
        """The RabbitMQ nodes' instances (none unless the sandbox runs `--with rabbitmq`)."""
        backing = self._plane.backing
        rabbitmq = backing.rabbitmq if backing is not None else None
        if rabbitmq is None:
            return []
        return [
            BrokerInstance.of(node.index, node.instance_name, node.amqp.host)
            for node in rabbitmq.nodes
        ]

    def power_off(self, instance_ids: Sequence[str]) -> None:
        self._on_loop(self._power(instance_ids, on=False))

    def power_on(self, instance_ids: Sequence[str]) -> None:
        self._on_loop(self._power(instance_ids, on=True))

    async def _power(self, instance_ids: Sequence[str], *, on: bool) -> None:
        wanted = set(instance_ids)
        for node in self._plane.nodes:
            kubelet = self._plane.kubelets.get(node.name)
            if node.instance_id not in wanted or kubelet is None:
                continue
            if on:
                kubelet.power_on()
            else:
                kubelet.power_off()
        backing = self._plane.backing
        rabbitmq = backing.rabbitmq if backing is not None else None
        brokers = [b for b in self.broker_instances() if b.instance_id in wanted]
        if rabbitmq is not None and brokers:
            # AWS answers "stopping"/"pending" at once; the node stops or boots behind it.
            nodes = [b.index for b in brokers]
            act = rabbitmq.start_node if on else rabbitmq.stop_node

            async def powering() -> None:
                # Together: after a full stop each node waits for its peers to boot.
                await asyncio.gather(*(act(index) for index in nodes))

            await self._begin(powering(), started=lambda: True)

    # -- CloudWatch alarms, for FIS's stop conditions --

    def web_identity(self, token: str, role_arn: str) -> Mapping[str, Any]:
        """STS's check of an IRSA token (`webidentity.py`), against the API server's key."""
        tokens = self._plane.tokens
        now = self._plane.clock.now().timestamp()
        account = role_account(role_arn)
        return web_identity_claims(token, tokens.verified_claims, tokens.issuer, now, account)

    def alarm_state(self, name: str) -> str:
        """A CloudWatch alarm's state as the sandbox knows it: the Prometheus alert of the
        same name (`deploy/monitoring/rules`, loaded by the sandbox's Prometheus) firing is
        `ALARM`, else `OK`. Pending is not yet ALARM, as an alarm waits its evaluation
        periods. An alarm no rule names, or no Prometheus to ask, is refused: a stop
        condition nobody watches must not look like a quiet one."""
        monitoring = self._plane.monitoring
        if monitoring is None:
            raise AwsRefusal(
                "InternalFailure",
                f"alarm {name}: the sandbox runs no Prometheus (start it --with monitoring),"
                " so no stop condition can be evaluated",
            )
        base = monitoring.prometheus_url
        rules = _prometheus(f"{base}/api/v1/rules?type=alert")
        names = {
            rule.get("name")
            for group in (rules.get("data") or {}).get("groups") or []
            for rule in group.get("rules") or []
        }
        if name not in names:
            raise AwsRefusal(
                "ResourceNotFoundException",
                f"alarm {name}: the sandbox maps a CloudWatch alarm to the Prometheus alert of"
                " the same name in deploy/monitoring/rules, and there is none",
            )
        alerts = (_prometheus(f"{base}/api/v1/alerts").get("data") or {}).get("alerts") or []
        firing = any(
            (a.get("labels") or {}).get("alertname") == name and a.get("state") == "firing"
            for a in alerts
        )
        return "ALARM" if firing else "OK"

    # -- the network (FIS's aws:network:disrupt-connectivity) --

    def cut_zone(self, zone: str) -> None:
        """The zone's subnet loses every packet to and from the rest (sandbox.cni.zones):
        its pods, and the infrastructure's hosts that sit in it."""
        if self._plane.pod_network is None:
            raise AwsRefusal(
                "InternalFailure",
                "the sandbox's pod network is off (it needs root, nft and iptables):"
                " no zone can be cut off",
            )
        hosts = self.zone_hosts(zone)
        self._on_loop(self._zones(lambda: self._plane.zone_isolation.cut(zone, hosts)))

    def restore_zone(self, zone: str) -> None:
        self._on_loop(self._zones(lambda: self._plane.zone_isolation.restore(zone)))

    def zone_hosts(self, zone: str) -> list[str]:
        """The infrastructure's addresses in a zone: the DB instance's host there, the
        cache nodes there, the brokers there."""
        backing = self._plane.backing
        hosts = [b.private_ip for b in self.broker_instances() if b.zone == zone]
        if backing is not None:
            rds = backing.rds
            hosts += [n.endpoint.host for n in (rds.primary, rds.standby) if n.az == zone]
            hosts += [n.endpoint.host for n in backing.redis.nodes if n.az == zone]
        return sorted(set(hosts))

    @staticmethod
    async def _zones(change: Callable[[], None]) -> None:
        change()  # on the loop, where the pod network's controller reads the zones

    # -- RDS --

    def db_identifiers(self) -> Sequence[str]:
        backing = self._plane.backing
        return [backing.rds.identifier] if backing is not None else []

    def db_view(self, identifier: str) -> DbView | None:
        backing = self._plane.backing
        if backing is None or backing.rds.identifier != identifier:
            return None
        rds = backing.rds
        return DbView(str(rds.status), rds.primary.az, rds.standby.az, rds.endpoint_name, rds.port)

    def reboot_db(self, identifier: str, *, force_failover: bool) -> None:
        backing = self._plane.backing
        if backing is None or backing.rds.identifier != identifier:
            raise AwsRefusal("DBInstanceNotFound", f"DBInstance {identifier} not found.")
        rds = backing.rds
        if rds.status is not RdsStatus.AVAILABLE:
            raise AwsRefusal(
                "InvalidDBInstanceState",
                f"Instance {identifier} is not currently in the available state.",
            )
        if force_failover and not rds.standby_attached:
            raise AwsRefusal(
                "InvalidDBInstanceState",
                f"Instance {identifier} cannot fail over: its standby is still being"
                " re-established after the last failover.",
            )
        action = rds.failover if force_failover else rds.reboot
        self._on_loop(self._begin(action(), started=lambda: rds.status is not RdsStatus.AVAILABLE))

    def stop_db(self, identifier: str) -> None:
        self._on_loop(self._db_power(identifier, on=False))

    def start_db(self, identifier: str) -> None:
        self._on_loop(self._db_power(identifier, on=True))

    async def _db_power(self, identifier: str, *, on: bool) -> None:
        """AWS answers with `starting` or `stopping`; the rest takes minutes behind it."""
        backing = self._plane.backing
        if backing is None or backing.rds.identifier != identifier:
            raise AwsRefusal("DBInstanceNotFound", f"DBInstance {identifier} not found.")
        rds = backing.rds
        expected = RdsStatus.STOPPED if on else RdsStatus.AVAILABLE
        if rds.status is not expected:
            what = "stopped, it cannot be started" if on else "in available state"
            raise AwsRefusal("InvalidDBInstanceState", f"Instance {identifier} is not {what}.")
        before = rds.status
        await self._begin(
            rds.unhalt() if on else rds.halt(), started=lambda: rds.status is not before
        )

    # -- ElastiCache --

    def cache_groups(self) -> Sequence[str]:
        backing = self._plane.backing
        return [backing.redis.group] if backing is not None else []

    def cache_members(self, group: str, node_group: str) -> Sequence[CacheMember]:
        backing = self._plane.backing
        if backing is None or backing.redis.group != group:
            return []
        nodes = [n for n in backing.redis.nodes if n.shard == node_group]
        nodes.sort(key=lambda n: n.role is not Role.PRIMARY)
        return [CacheMember(n.name, n.az, n.endpoint.host, n.endpoint.port) for n in nodes]

    def cache_configuration_endpoint(self, group: str) -> str:
        """The DNS name clients start from (it resolves to every node)."""
        backing = self._plane.backing
        return backing.redis.configuration_endpoint if backing is not None else ""

    def test_failover(self, group: str, node_group: str) -> None:
        backing = self._plane.backing
        if backing is None or backing.redis.group != group:
            raise AwsRefusal(
                "ReplicationGroupNotFoundFault", f"Replication group {group} not found."
            )
        redis = backing.redis
        if node_group not in {shard.shard for shard in redis.shards}:
            raise AwsRefusal(
                "NodeGroupNotFoundFault", f"Node group {node_group} not found in {group}."
            )
        if group in self._failing_over:
            raise AwsRefusal(
                "InvalidReplicationGroupState",
                f"Replication group {group} is not available: a test failover is in progress.",
            )
        before = len(redis.events)

        async def failing_over() -> None:
            self._failing_over.add(group)
            try:
                await redis.failover(node_group)
            finally:
                self._failing_over.discard(group)

        self._on_loop(self._begin(failing_over(), started=lambda: len(redis.events) > before))

    def interrupt_cache_zone(self, group: str, node_groups: Sequence[str]) -> None:
        """FIS's AZ power interruption: each node group whose primary lost power fails over.

        No API of ElastiCache does this (TestFailover refuses a second node group while
        one fails over), so it has its own effect. The sandbox's failovers take the
        cluster's lock, so the node groups fail over one after the other, not at once.
        """
        backing = self._plane.backing
        if backing is None or backing.redis.group != group:
            raise AwsRefusal(
                "ReplicationGroupNotFoundFault", f"Replication group {group} not found."
            )
        redis = backing.redis
        if group in self._failing_over:
            raise AwsRefusal(
                "InvalidReplicationGroupState",
                f"Replication group {group} is not available: a failover is in progress.",
            )
        before = len(redis.events)

        async def failing_over() -> None:
            self._failing_over.add(group)
            try:
                for node_group in node_groups:
                    await redis.failover(node_group)
            finally:
                self._failing_over.discard(group)

        self._on_loop(self._begin(failing_over(), started=lambda: len(redis.events) > before))

    def events(self) -> Sequence[AwsEvent]:
        backing = self._plane.backing
        if backing is None:
            return []
        rds, redis = backing.rds, backing.redis
        return [
            *(AwsEvent(rds.identifier, "db-instance", e.message, e.time) for e in rds.events),
            *(AwsEvent(redis.group, "replication-group", e.message, e.time) for e in redis.events),
        ]

    # -- plumbing --

    async def _begin(self, work: Coroutine[Any, Any, Any], *, started: Any) -> None:
        """Start `work` in the background; return once it has begun (AWS answers then)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)
        for _ in range(1000):  # bounded: about 10 s
            if started() or task.done():
                break
            await asyncio.sleep(0.01)
        error = task.exception() if task.done() else None
        if isinstance(error, InvalidDBInstanceState):
            raise AwsRefusal("InvalidDBInstanceState", str(error))
        if error is not None:
            raise AwsRefusal("InternalFailure", f"{type(error).__name__}: {error}")

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AWS effect failed: %r", task.exception())

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(CALL_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Cancel effects still running (a failover in flight when the sandbox stops)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
