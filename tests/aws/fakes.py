"""A recording stand-in for the sandbox behind the AWS endpoint (no processes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.aws.inventory import AwsEvent, BrokerInstance, CacheMember, DbView, NodeInstance
from sandbox.aws.refusal import AwsRefusal
from sandbox.aws.webidentity import role_account, web_identity_claims
from sandbox.kube.auth.tokens import TokenIssuer
from sandbox.kube.clock import ManualClock

NODES = (
    NodeInstance(
        "i-0a00000000000000a", "us-west-2a", "127.0.1.10", "node-a", "m5.xlarge", "workers"
    ),
    NodeInstance(
        "i-0b00000000000000b", "us-west-2b", "127.0.1.11", "node-b", "m5.xlarge", "workers"
    ),
    NodeInstance(
        "i-0c00000000000000c", "us-west-2c", "127.0.1.12", "node-c", "m5.xlarge", "workers"
    ),
)

# the game day's ServiceAccount, as the fake issuer's lookup finds it
RUNNER = {"metadata": {"name": "gameday-runner", "namespace": "harmonyflow-gameday", "uid": "u-1"}}
ACCOUNTS: dict[tuple[str, str, str], Any] = {
    ("serviceaccounts", "harmonyflow-gameday", "gameday-runner"): RUNNER
}


def _lookup(resource: str, namespace: str, name: str) -> Any:
    return ACCOUNTS.get((resource, namespace, name))


BROKERS = tuple(
    BrokerInstance.of(index, f"rabbitmq-{index + 1}", f"127.0.3.{30 + index}") for index in range(3)
)


@dataclass
class RecordingEffects:
    """Keeps what each call asked for; a failover swaps the AZs at once."""

    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    zone: str = "us-west-2a"
    secondary: str = "us-west-2b"
    status: str = "available"
    recorded: list[AwsEvent] = field(default_factory=list)
    primaries: dict[str, int] = field(default_factory=dict)
    # none unless a test asks, as the sandbox has none unless it runs `--with rabbitmq`
    brokers: tuple[BrokerInstance, ...] = ()
    # CloudWatch alarms by name, as the sandbox maps them onto Prometheus alerts
    alarms: dict[str, str] = field(default_factory=dict)
    # the cluster's ServiceAccount token signer, whose key stands for the OIDC provider's
    tokens: TokenIssuer = field(default_factory=lambda: TokenIssuer(_lookup, ManualClock()))

    def node_instances(self) -> Sequence[NodeInstance]:
        return NODES

    def broker_instances(self) -> Sequence[BrokerInstance]:
        return self.brokers

    def db_identifiers(self) -> Sequence[str]:
        return ["harmonyflow-db"]

    def db_view(self, identifier: str) -> DbView | None:
        if identifier != "harmonyflow-db":
            return None
        return DbView(self.status, self.zone, self.secondary, "127.0.3.10", 5432)

    def reboot_db(self, identifier: str, *, force_failover: bool) -> None:
        if self.status != "available":
            raise AwsRefusal("InvalidDBInstanceState", f"{identifier} is {self.status}")
        self.calls.append(("reboot_db", (identifier, str(force_failover))))
        if force_failover:
            self.zone, self.secondary = self.secondary, self.zone
        self.recorded.append(
            AwsEvent(identifier, "db-instance", "Multi-AZ instance failover started.", _now())
        )

    def stop_db(self, identifier: str) -> None:
        self.calls.append(("stop_db", (identifier,)))
        self.status = "stopped"

    def start_db(self, identifier: str) -> None:
        self.calls.append(("start_db", (identifier,)))
        self.status = "available"

    def cache_groups(self) -> Sequence[str]:
        return ["harmonyflow-redis"]

    def cache_members(self, group: str, node_group: str) -> Sequence[CacheMember]:
        members = [
            CacheMember(f"{group}-{node_group}-001", "us-west-2a", "127.0.3.20", 6379),
            CacheMember(f"{group}-{node_group}-002", "us-west-2b", "127.0.3.21", 6379),
        ]
        if self.primaries.get(node_group, 0) % 2:
            members.reverse()
        return members

    def cache_configuration_endpoint(self, group: str) -> str:
        return f"{group}.abcdef.clustercfg.usw2.cache.amazonaws.com"

    def test_failover(self, group: str, node_group: str) -> None:
        self.calls.append(("test_failover", (group, node_group)))
        self.primaries[node_group] = self.primaries.get(node_group, 0) + 1
        self.recorded.append(
            AwsEvent(
                group,
                "replication-group",
                f"Test Failover API called for node group {node_group}",
                _now(),
            )
        )

    def interrupt_cache_zone(self, group: str, node_groups: Sequence[str]) -> None:
        self.calls.append(("interrupt_cache_zone", (group, *node_groups)))
        for node_group in node_groups:
            self.primaries[node_group] = self.primaries.get(node_group, 0) + 1

    def events(self) -> Sequence[AwsEvent]:
        return list(self.recorded)

    def power_off(self, instance_ids: Sequence[str]) -> None:
        self.calls.append(("power_off", tuple(instance_ids)))

    def power_on(self, instance_ids: Sequence[str]) -> None:
        self.calls.append(("power_on", tuple(instance_ids)))

    def web_identity(self, token: str, role_arn: str) -> Mapping[str, Any]:
        now = self.tokens.clock.now().timestamp()
        verified, issuer = self.tokens.verified_claims, self.tokens.issuer
        return web_identity_claims(token, verified, issuer, now, role_account(role_arn))

    def alarm_state(self, name: str) -> str:
        if name not in self.alarms:
            raise AwsRefusal("ResourceNotFoundException", f"no alert named {name}")
        return self.alarms[name]

    def cut_zone(self, zone: str) -> None:
        self.calls.append(("cut_zone", (zone,)))

    def restore_zone(self, zone: str) -> None:
        self.calls.append(("restore_zone", (zone,)))


def _now() -> datetime:
    return datetime.now(UTC)
