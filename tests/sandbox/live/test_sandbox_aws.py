"""The sandbox's AWS endpoint doing what a game day asks of AWS, with the real clients.

A forced RDS failover through the aws CLI and chaostoolkit-aws, an ElastiCache
TestFailover under load, and an EC2 power loss of one zone, each against a
sandbox started by `resilience sandbox up` and reached only through the exports
of `resilience sandbox env`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dns.resolver
import pytest
from kubernetes import client

from resilience.traffic import read_back
from sandbox.infra.clusterdns import DEFAULT_ENDPOINT as CLUSTER_DNS
from sandbox.infra.redis_cluster import NODE_TIMEOUT_MS
from tests.aws.clients import aws_cli as run_aws_cli
from tests.aws.clients import boto as boto_client
from tests.aws.clients import cli_env
from tests.live import (
    DEPLOYMENT,
    FAST_NODE_LIFECYCLE_FLAGS,
    NAMESPACE,
    LiveSandbox,
    create_sessions,
)
from tests.sandbox.cluster_harness import wait_for
from tests.sandbox.live.traffic import Writer, lost_writes, write_gap

pytestmark = pytest.mark.usefixtures("servers_installed")

SANDBOX_UP_FLAGS = [
    # a zone outage plays out in a minute: NotReady after 20 s without a heartbeat,
    # eviction 10 s after the taint
    *FAST_NODE_LIFECYCLE_FLAGS,
    # These tests check that each client's call does what AWS does, not how long it
    # takes (the RDS suite and the game days keep AWS's 60 s,
    # tests/sandbox/infra/test_infra_rds.py holds the duration to its flag): a shorter
    # failover, and a failed host back soon, for two failovers in a row.
    "--rds-failover-seconds",
    "20",
    "--rds-reboot-seconds",
    "10",
]
DB = "harmonyflow-db"


def aws_cli(live: LiveSandbox, *args: str) -> Any:
    return run_aws_cli(live.exports, *args)


def boto(live: LiveSandbox, service: str) -> Any:
    return boto_client(live.exports, service)


def db_instance(live: LiveSandbox) -> dict[str, Any]:
    [db] = boto(live, "rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"]
    return dict(db)


@contextmanager
def writing(live: LiveSandbox, sessions: int = 6) -> Iterator[Writer]:
    writer = Writer(live.ingress, create_sessions(live, sessions), max_seconds=150)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(writer.acked) >= 20, 30, "writes flowing before the fault")
        yield writer
    finally:
        writer.stop.set()
        thread.join(30)


def lost_acknowledged_writes(live: LiveSandbox, writer: Writer) -> list[str]:
    return lost_writes(writer.acked, read_back(live.ingress, writer.sessions))


def resolve(name: str) -> list[str]:
    """What a pod's resolver gets for `name` from the sandbox's cluster DNS."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [CLUSTER_DNS.host]
    resolver.port = CLUSTER_DNS.port
    resolver.cache = None
    return sorted(record.address for record in resolver.resolve(name, "A", lifetime=5))


def restarted_events(live: LiveSandbox) -> int:
    events = boto(live, "rds").describe_events(SourceType="db-instance", SourceIdentifier=DB)
    return [e["Message"] for e in events["Events"]].count("DB instance restarted")


def failover_and_recover(
    live: LiveSandbox, trigger: Any, record_property: Any, label: str
) -> dict[str, Any]:
    before = db_instance(live)
    assert before["DBInstanceStatus"] == "available"
    name = before["Endpoint"]["Address"]
    assert name.endswith(".us-west-2.rds.amazonaws.com"), name
    primary_address = resolve(name)
    assert len(primary_address) == 1, primary_address
    restarted_before = restarted_events(live)
    with writing(live) as writer:
        fault_at = time.monotonic()
        answer = trigger()
        assert answer["DBInstance"]["DBInstanceStatus"] == "rebooting"
        after = wait_for(
            lambda: (db := db_instance(live))["DBInstanceStatus"] == "available" and db,
            120,
            "the DB instance available again",
        )
        wait_for(
            lambda: any(a.at > fault_at + 1 for a in writer.acked), 60, "writes acknowledged again"
        )
        time.sleep(1)
    # the failed host comes back as the standby (--rds-reboot-seconds after the flip)
    wait_for(
        lambda: restarted_events(live) > restarted_before, 180, "the old primary back as standby"
    )
    gap = write_gap(writer.acked, fault_at)
    record_property(f"{label}_write_gap_seconds", gap)
    print(f"{label}: write gap {gap} s, {writer.failures} failed writes")
    assert gap is not None, "no write was acknowledged after the failover"
    assert lost_acknowledged_writes(live, writer) == [], "an acknowledged write was lost"
    assert after["AvailabilityZone"] == before["SecondaryAvailabilityZone"]
    assert after["SecondaryAvailabilityZone"] == before["AvailabilityZone"]
    # the endpoint's name stays, its record flipped to the other instance's address
    assert after["Endpoint"]["Address"] == name
    flipped = resolve(name)
    assert len(flipped) == 1 and flipped != primary_address, (primary_address, flipped)
    return after


def test_rds_forced_failover_with_the_aws_cli_then_chaostoolkit_aws(
    live: LiveSandbox, record_property: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = failover_and_recover(
        live,
        lambda: aws_cli(
            live, "rds", "reboot-db-instance", "--db-instance-identifier", DB, "--force-failover"
        ),
        record_property,
        "aws_cli",
    )
    for name, value in cli_env(live.exports).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    from chaosaws.rds.actions import reboot_db_instance  # noqa: PLC0415 - reads the env

    second = failover_and_recover(
        live,
        lambda: reboot_db_instance(DB, force_failover=True),
        record_property,
        "chaostoolkit_aws",
    )
    assert second["AvailabilityZone"] != first["AvailabilityZone"]
    events = aws_cli(
        live, "rds", "describe-events", "--source-type", "db-instance", "--source-identifier", DB
    )["Events"]
    messages = [e["Message"] for e in events]
    assert messages.count("Multi-AZ instance failover started.") == 2, messages
    assert messages.count("Multi-AZ instance failover completed.") == 2, messages
    restarts = [
        status.restart_count for pod in live.pods() for status in pod.status.container_statuses
    ]
    assert restarts == [0] * len(restarts), "a failover must not make liveness restart a pod"


def test_elasticache_test_failover_under_load(live: LiveSandbox) -> None:
    cache = boto(live, "elasticache")
    [group] = cache.describe_replication_groups(ReplicationGroupId="harmonyflow-redis")[
        "ReplicationGroups"
    ]
    shard = group["NodeGroups"][0]
    primary_before = shard["NodeGroupMembers"][0]["CacheClusterId"]
    with writing(live) as writer:
        fault_at = time.monotonic()
        cache.test_failover(
            ReplicationGroupId="harmonyflow-redis", NodeGroupId=shard["NodeGroupId"]
        )
        wait_for(
            lambda: any("completed" in e["Message"] for e in cache.describe_events()["Events"]),
            90,
            "the failover completed",
        )
        outage = time.monotonic() - fault_at
        # a real outage: the primary was silent until the cluster declared it failed
        assert outage >= NODE_TIMEOUT_MS / 1000, f"the shard failed over in {outage:.1f}s"
        wait_for(lambda: any(a.at > fault_at + 2 for a in writer.acked), 60, "writes go on")
        attempts = len(writer.acked) + writer.failures
    [group] = cache.describe_replication_groups(ReplicationGroupId="harmonyflow-redis")[
        "ReplicationGroups"
    ]
    assert group["NodeGroups"][0]["NodeGroupMembers"][0]["CacheClusterId"] != primary_before
    messages = [e["Message"] for e in cache.describe_events()["Events"]]
    assert f"Test Failover API called for node group {shard['NodeGroupId']}" in messages
    print(f"TestFailover: {writer.failures} failed of {attempts} writes")
    assert writer.failures <= max(5, attempts // 20), "errors beyond 5% during a cache failover"
    assert lost_acknowledged_writes(live, writer) == []


def nodes_in(live: LiveSandbox, zone: str) -> list[Any]:
    return [
        n
        for n in client.CoreV1Api(live.api).list_node().items
        if n.metadata.labels.get("topology.kubernetes.io/zone") == zone
    ]


def ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def test_ec2_stop_of_a_zone_takes_its_nodes_down_and_start_brings_them_back(
    live: LiveSandbox,
) -> None:
    zone = "us-west-2b"
    ec2 = boto(live, "ec2")
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "availability-zone", "Values": [zone]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    ids = sorted(i["InstanceId"] for r in reservations for i in r["Instances"])
    provider_ids = sorted(n.spec.provider_id.rsplit("/", 1)[1] for n in nodes_in(live, zone))
    assert ids == provider_ids and ids, "the zone's instances are its nodes"
    victims = {
        p.metadata.name
        for p in live.pods()
        if p.spec.node_name in {n.metadata.name for n in nodes_in(live, zone)}
    }
    assert victims, "the seed spreads one pod per zone"

    ec2.stop_instances(InstanceIds=ids)
    try:
        wait_for(lambda: not any(ready(n) for n in nodes_in(live, zone)), 90, "the zone NotReady")
        taints = [
            t.key
            for n in nodes_in(live, zone)
            for t in (n.spec.taints or [])
            if t.effect == "NoExecute"
        ]
        assert "node.kubernetes.io/unreachable" in taints
        wait_for(
            lambda: all(
                p.metadata.deletion_timestamp is not None
                for p in live.pods()
                if p.metadata.name in victims
            ),
            90,
            "the zone's pods evicted once the toleration ran out",
        )
        wait_for(
            lambda: len([p for p in live.pods() if p.metadata.deletion_timestamp is None]) >= 3,
            30,
            "replacement pods created",
        )
    finally:
        ec2.start_instances(InstanceIds=ids)
    wait_for(lambda: all(ready(n) for n in nodes_in(live, zone)), 90, "the zone Ready again")
    live.kubectl("rollout", "status", f"deploy/{DEPLOYMENT}", "-n", NAMESPACE, "--timeout=120s")
    wait_for(
        lambda: not any(p.metadata.name in victims for p in live.pods()), 90, "evicted pods gone"
    )
    state = [
        i["State"]["Name"]
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
        for i in r["Instances"]
    ]
    assert state == ["running"] * len(ids)
