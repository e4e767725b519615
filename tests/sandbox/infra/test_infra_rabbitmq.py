"""The sandbox's RabbitMQ cluster: three real nodes on 127.0.5.30..32 (not the sandbox's)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import psutil
import pytest

from sandbox.infra.postgres import read_sandbox_secret
from sandbox.infra.rabbitmq_cluster import (
    PASSWORD_KEY,
    RabbitmqCluster,
    erlang_ip_tuple,
    node_env,
    plan_nodes,
    render_rabbitmq_conf,
)
from sandbox.infra.supervisor import Endpoint

HOSTS = ("127.0.5.30", "127.0.5.31", "127.0.5.32")
EPMD_PORT = 4381
DIST_PORT = 25682
QUEUE_ARGS = {"x-queue-type": "quorum"}


# --- pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.3.30", "{127,0,3,30}"), ("127.0.5.32", "{127,0,5,32}")],
)
def test_erlang_ip_tuple(host: str, expected: str) -> None:
    assert erlang_ip_tuple(host) == expected


@pytest.mark.parametrize("bad", ["localhost", "127.0.0", "127.0.0.300"])
def test_erlang_ip_tuple_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        erlang_ip_tuple(bad)


def test_plan_names_and_ports() -> None:
    nodes = plan_nodes(("127.0.3.30", "127.0.3.31", "127.0.3.32"), 5672)
    assert [(n.instance_name, n.nodename, str(n.amqp), str(n.dist)) for n in nodes] == [
        ("rabbitmq-1", "rabbit-1@127.0.3.30", "127.0.3.30:5672", "127.0.3.30:25672"),
        ("rabbitmq-2", "rabbit-2@127.0.3.31", "127.0.3.31:5672", "127.0.3.31:25673"),
        ("rabbitmq-3", "rabbit-3@127.0.3.32", "127.0.3.32:5672", "127.0.3.32:25674"),
    ]
    with pytest.raises(ValueError, match="distinct hosts"):
        plan_nodes(("127.0.3.30", "127.0.3.30"), 5672)


def test_config_and_env() -> None:
    nodes = plan_nodes(HOSTS, 5672, DIST_PORT)
    conf = render_rabbitmq_conf(nodes[1], nodes, "pw")
    assert "listeners.tcp.1 = 127.0.5.31:5672" in conf
    assert "cluster_partition_handling = pause_minority" in conf
    assert "cluster_formation.classic_config.nodes.3 = rabbit-3@127.0.5.32" in conf
    env = node_env(nodes[1], nodes, Path("/s/rabbitmq"), EPMD_PORT)
    assert env["ERL_EPMD_PORT"] == "4381"
    assert env["ERL_EPMD_ADDRESS"] == ",".join(HOSTS)
    assert env["RABBITMQ_DIST_PORT"] == "25683"
    assert env["RABBITMQ_MNESIA_BASE"] == "/s/rabbitmq/rabbitmq-2/mnesia"
    assert "inet_dist_use_interface {127,0,5,31}" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]


def test_a_bad_node_index_is_refused(tmp_path: Path) -> None:
    cluster = RabbitmqCluster(tmp_path, HOSTS, epmd_port=EPMD_PORT, dist_port=DIST_PORT)
    assert cluster.instance_names == ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
    with pytest.raises(Exception, match="not 3"):
        asyncio.run(cluster.start_node(3))


# --- real nodes ---------------------------------------------------------------------


def leftovers(state_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(process.info["cmdline"] or [])
            environ = process.info["environ"] or {}
        except (psutil.Error, TypeError):
            continue
        if str(state_dir) in text or str(state_dir) in " ".join(environ.values()):
            found.append(process)
    return found


def with_cluster(tmp_path: Path, body: Callable[[RabbitmqCluster], Awaitable[None]]) -> None:
    """Run `body` against a fresh cluster; afterwards nothing of it may be left running."""

    async def main() -> None:
        started = time.monotonic()
        rabbitmq = RabbitmqCluster(tmp_path, HOSTS, epmd_port=EPMD_PORT, dist_port=DIST_PORT)
        try:
            await rabbitmq.start()
            print(f"cold start of 3 nodes: {time.monotonic() - started:.1f} s")
            await body(rabbitmq)
        finally:
            await rabbitmq.stop()

    asyncio.run(main())
    assert leftovers(tmp_path) == []


async def publish(url: str, queue: str, bodies: list[str]) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments=QUEUE_ARGS)
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
                timeout=10,
            )


async def consume_all(url: str, queue: str, count: int) -> list[str]:
    connection = await aio_pika.connect(url, timeout=10)
    got: list[str] = []
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, arguments=QUEUE_ARGS)
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            message = await declared.get(fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            got.append(message.body.decode())
            await message.ack()
    return got


def test_three_nodes_form_one_cluster(tmp_path: Path) -> None:
    with_cluster(tmp_path, lambda cluster: formed(cluster, tmp_path))


async def formed(cluster: RabbitmqCluster, tmp_path: Path) -> None:
    assert all(cluster.node_running(i) for i in range(3))
    assert all("harmonyflow:" in url and "@127.0.5.3" in url for url in cluster.amqp_urls)
    log = "".join(
        path.read_text() for path in (tmp_path / "rabbitmq" / "rabbitmq-3" / "log").glob("*.log")
    )
    assert "rabbit-1@127.0.5.30" in log
    # a quorum queue declared on node 1 is visible through node 3: one cluster
    await publish(cluster.amqp_urls[0], "shared", ["x"])
    assert await consume_all(cluster.amqp_urls[2], "shared", 1) == ["x"]
    # the password is the overlay's secret, and reaches no log
    password = read_sandbox_secret(PASSWORD_KEY)
    assert f":{password}@" in cluster.amqp_urls[0]
    for path in (tmp_path / "rabbitmq").rglob("*.log"):
        assert password not in path.read_text()


def test_confirmed_messages_survive_losing_one_node(tmp_path: Path) -> None:
    with_cluster(tmp_path, lose_one_node)


async def lose_one_node(cluster: RabbitmqCluster) -> None:
    urls = cluster.amqp_urls
    await publish(urls[0], "orders", [f"m{i}" for i in range(50)])
    await cluster.stop_node(0)
    assert not cluster.node_running(0)
    await publish(urls[1], "orders", [f"n{i}" for i in range(50)])
    got = await consume_all(urls[2], "orders", 100)
    assert sorted(got) == sorted([f"m{i}" for i in range(50)] + [f"n{i}" for i in range(50)])
    await cluster.start_node(0)
    assert cluster.node_running(0)


@pytest.mark.slow
def test_a_full_restart_keeps_confirmed_messages(tmp_path: Path) -> None:
    asyncio.run(full_restart(tmp_path))
    assert leftovers(tmp_path) == []


async def full_restart(tmp_path: Path) -> None:
    rabbitmq = RabbitmqCluster(tmp_path, HOSTS, epmd_port=EPMD_PORT, dist_port=DIST_PORT)
    try:
        await rabbitmq.start()
        await publish(rabbitmq.amqp_urls[0], "kept", [f"k{i}" for i in range(20)])
        await rabbitmq.stop()
        assert leftovers(tmp_path) == []
        await rabbitmq.start()
        got = await consume_all(rabbitmq.amqp_urls[1], "kept", 20)
        assert sorted(got) == sorted(f"k{i}" for i in range(20))
    finally:
        await rabbitmq.stop()


def test_the_endpoint_type_is_shared() -> None:
    assert str(Endpoint("127.0.5.30", 5672)) == "127.0.5.30:5672"
