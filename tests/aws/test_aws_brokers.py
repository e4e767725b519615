"""The RabbitMQ brokers as EC2 instances: seeded, filtered by tag, stopped and started via boto3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.aws.endpoint import AwsEndpoint
from tests.aws.fakes import BROKERS, NODES, RecordingEffects


@pytest.fixture
def endpoint() -> Iterator[tuple[AwsEndpoint, RecordingEffects]]:
    effects = RecordingEffects(brokers=BROKERS)
    server = AwsEndpoint(effects)
    server.start()
    try:
        yield server, effects
    finally:
        server.stop()


def brokers(ec2: Any, **filters: str) -> dict[str, dict[str, Any]]:
    answer = ec2.describe_instances(
        Filters=[{"Name": "tag:harmonyflow:role", "Values": ["rabbitmq"]}]
        + [{"Name": k.replace("_", "-"), "Values": [v]} for k, v in filters.items()]
    )
    return {i["InstanceId"]: i for r in answer["Reservations"] for i in r["Instances"]}


def test_brokers_are_instances_with_their_tags(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, _ = endpoint
    found = brokers(server.client("ec2"))
    assert sorted(found) == [b.instance_id for b in BROKERS]
    first = found["i-0f000000000000031"]
    assert first["PrivateIpAddress"] == "127.0.3.30"
    assert first["Placement"]["AvailabilityZone"] == "us-west-2a"
    assert {t["Key"]: t["Value"] for t in first["Tags"]}["Name"] == "rabbitmq-1"
    assert not set(found) & {n.instance_id for n in NODES}


def test_stopping_a_broker_stops_its_node(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, effects = endpoint
    ec2 = server.client("ec2")
    broker = BROKERS[1].instance_id
    stopping = ec2.stop_instances(InstanceIds=[broker])["StoppingInstances"]
    assert [s["CurrentState"]["Name"] for s in stopping] == ["stopping"]
    assert list(brokers(ec2, instance_state_name="stopped")) == [broker]
    ec2.start_instances(InstanceIds=[broker])
    assert effects.calls == [("power_off", (broker,)), ("power_on", (broker,))]
    assert len(brokers(ec2, instance_state_name="running")) == 3


def test_without_rabbitmq_there_are_no_brokers() -> None:
    server = AwsEndpoint(RecordingEffects())
    server.start()
    try:
        assert brokers(server.client("ec2")) == {}
    finally:
        server.stop()
