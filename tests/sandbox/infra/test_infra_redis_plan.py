"""Pure parts of the Redis cluster: shard/AZ plan, redis.conf, reading CLUSTER NODES."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.infra.redis_cluster import (
    ClusterNodeView,
    RedisNodeSpec,
    Role,
    ShardPlan,
    create_order,
    failover_messages,
    misplaced_replicas,
    observed_roles,
    parse_cluster_nodes,
    parse_info,
    placement_problems,
    plan_shards,
    render_redis_conf,
)
from sandbox.infra.supervisor import Endpoint

PLAN = plan_shards()


def make_node(
    host: str, az: str = "us-west-2a", shard: str = "0001", member: int = 1
) -> RedisNodeSpec:
    return RedisNodeSpec(f"g-{shard}-{member:03d}", Endpoint(host, 6379), az, shard)


def make_view(
    node_id: str, host: str, *, primary_of: str | None = None, flags: str = "", slots: str = ""
) -> ClusterNodeView:
    role = "slave" if primary_of else "master"
    return ClusterNodeView(
        node_id,
        Endpoint(host, 6379),
        frozenset([role, *filter(None, flags.split(","))]),
        primary_of,
        True,
        tuple(slots.split()),
    )


def planned_views(swapped: frozenset[str] = frozenset()) -> list[ClusterNodeView]:
    """Views of PLAN (ids = host's last octet); shards in `swapped` have failed over."""
    views: list[ClusterNodeView] = []
    for shard in PLAN:
        primary, replica = shard.members
        if shard.shard in swapped:
            primary, replica = replica, primary
        primary_id = primary.endpoint.host.rsplit(".", 1)[1]
        replica_id = replica.endpoint.host.rsplit(".", 1)[1]
        views.append(make_view(primary_id, primary.endpoint.host))
        views.append(make_view(replica_id, replica.endpoint.host, primary_of=primary_id))
    return views


# --- the plan --------------------------------------------------------------------------


def test_default_plan() -> None:
    assert [
        (s.shard, s.primary.endpoint.host, s.primary.az, s.replica.endpoint.host, s.replica.az)
        for s in PLAN
    ] == [
        ("0001", "127.0.3.20", "us-west-2a", "127.0.3.24", "us-west-2b"),
        ("0002", "127.0.3.21", "us-west-2b", "127.0.3.25", "us-west-2c"),
        ("0003", "127.0.3.22", "us-west-2c", "127.0.3.23", "us-west-2a"),
    ]


def test_default_names_are_elasticache_cache_cluster_ids() -> None:
    assert [m.name for s in PLAN for m in s.members] == [
        "harmonyflow-redis-0001-001",
        "harmonyflow-redis-0001-002",
        "harmonyflow-redis-0002-001",
        "harmonyflow-redis-0002-002",
        "harmonyflow-redis-0003-001",
        "harmonyflow-redis-0003-002",
    ]


def test_azs_round_robin_over_the_addresses() -> None:
    by_host = {m.endpoint.host: m.az for s in PLAN for m in s.members}
    assert [by_host[f"127.0.3.{20 + i}"] for i in range(6)] == [
        "us-west-2a",
        "us-west-2b",
        "us-west-2c",
        "us-west-2a",
        "us-west-2b",
        "us-west-2c",
    ]


@pytest.mark.parametrize("count", [6, 8, 10, 12])
def test_larger_plans_keep_shards_apart(count: int) -> None:
    shards = plan_shards([f"127.9.0.{i}" for i in range(count)], 7000, group="g")
    assert len(shards) == count // 2
    assert placement_problems(shards) == []


@pytest.mark.parametrize("count", [0, 4, 7])
def test_plan_refuses_odd_or_small_host_lists(count: int) -> None:
    with pytest.raises(ValueError, match="hosts"):
        plan_shards([f"127.9.0.{i}" for i in range(count)])


@pytest.mark.parametrize(
    ("shards", "problem"),
    [
        pytest.param(
            [ShardPlan("0001", make_node("1", "a"), make_node("1", "b"))],
            "share 1",
            id="same-address",
        ),
        pytest.param(
            [ShardPlan("0001", make_node("1", "a"), make_node("2", "a"))],
            "both in a",
            id="same-az",
        ),
        pytest.param(
            [
                ShardPlan("0001", make_node("1", "a"), make_node("2", "b")),
                ShardPlan("0002", make_node("2", "b"), make_node("3", "c")),
            ],
            "more than one place",
            id="node-twice",
        ),
    ],
)
def test_placement_problems(shards: list[ShardPlan], problem: str) -> None:
    assert any(problem in found for found in placement_problems(shards))


def test_create_order_anticipates_redis_cli_rotation() -> None:
    hosts = [spec.endpoint.host for spec in create_order(PLAN)]
    # primaries first, then the replicas; redis-cli gives the k-th primary the
    # (k+1)-th replica given (the first given goes to the last primary)
    assert hosts == [f"127.0.3.{20 + i}" for i in range(6)]
    replicas = hosts[3:]
    rotated = replicas[1:] + replicas[:1]
    assert rotated == [s.replica.endpoint.host for s in PLAN]


def test_redis_conf() -> None:
    node = PLAN[1].replica
    lines = render_redis_conf(node, Path("/state/redis/n"), 5000).splitlines()
    for expected in [
        "bind 127.0.3.25",
        "port 6379",
        "protected-mode no",
        "cluster-enabled yes",
        "cluster-port 16379",
        "cluster-node-timeout 5000",
        "cluster-announce-ip 127.0.3.25",
        "appendonly yes",
        "dir /state/redis/n",
        'logfile ""',
        "daemonize no",
    ]:
        assert expected in lines
    # its own address only: to listen on, and to send from (a silenced node is cut off both ways)
    assert [line for line in lines if line.startswith("bind")] == [
        "bind 127.0.3.25",
        "bind-source-addr 127.0.3.25",
    ]


# --- reading the cluster ---------------------------------------------------------------

CLUSTER_NODES = "\n".join(
    [
        "e7d1 127.0.3.24:6379@16379 slave 67ed 0 1426238317239 4 connected",
        "67ed 127.0.3.20:6379@16379,host.example myself,master - 0 0 1 connected 0-5460",
        "292f 127.0.3.21:6379@16379 master,fail? - 1426238316232 1426238315232 2 disconnected"
        " 5461-10922 [5461->-abc]",
    ]
)


def test_parse_cluster_nodes() -> None:
    replica, myself, failing = parse_cluster_nodes(CLUSTER_NODES)
    assert replica.endpoint == Endpoint("127.0.3.24", 6379)
    assert replica.is_replica and not replica.is_primary
    assert replica.primary_id == myself.node_id
    assert myself.flags == {"myself", "master"} and myself.primary_id is None
    assert myself.slots == ("0-5460",)
    assert failing.failing and not failing.connected
    assert failing.slots == ("5461-10922", "[5461->-abc]")


def test_parse_cluster_nodes_skips_short_lines() -> None:
    assert parse_cluster_nodes("\nnot a line\n") == []


def test_parse_info() -> None:
    text = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nx:a:b\r\n"
    assert parse_info(text) == {"role": "slave", "master_link_status": "up", "x": "a:b"}


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        pytest.param(
            planned_views(),
            {m.name: r for s in PLAN for m, r in zip(s.members, Role, strict=True)},
            id="as-planned",
        ),
        pytest.param(
            planned_views(frozenset({"0002"})),
            {
                **{m.name: r for s in PLAN for m, r in zip(s.members, Role, strict=True)},
                PLAN[1].primary.name: Role.REPLICA,
                PLAN[1].replica.name: Role.PRIMARY,
            },
            id="shard-2-failed-over",
        ),
        pytest.param(planned_views()[:-1], None, id="node-unknown"),
        pytest.param(
            [
                *planned_views()[:2],
                make_view("21", "127.0.3.21"),
                make_view("25", "127.0.3.25"),
                *planned_views()[4:],
            ],
            None,
            id="two-primaries-in-a-shard",
        ),
        pytest.param(
            [
                *planned_views()[:3],
                make_view("25", "127.0.3.25", primary_of="20"),
                *planned_views()[4:],
            ],
            None,
            id="replica-of-another-shard",
        ),
        pytest.param(
            [make_view("20", "127.0.3.20", flags="fail"), *planned_views()[1:]],
            None,
            id="primary-failing",
        ),
    ],
)
def test_observed_roles(views: list[ClusterNodeView], expected: dict[str, Role] | None) -> None:
    assert observed_roles(PLAN, views) == expected


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        pytest.param(planned_views(), [], id="as-planned"),
        pytest.param(
            [
                make_view("20", "127.0.3.20"),
                make_view("21", "127.0.3.21"),
                make_view("22", "127.0.3.22"),
                make_view("24", "127.0.3.24", primary_of="21"),
                make_view("25", "127.0.3.25", primary_of="22"),
                make_view("23", "127.0.3.23", primary_of="20"),
            ],
            [(PLAN[0].replica, "20"), (PLAN[1].replica, "21"), (PLAN[2].replica, "22")],
            id="all-rotated",
        ),
        pytest.param(
            [make_view("24", "127.0.3.24"), make_view("20", "127.0.3.20")],
            [],
            id="replica-not-yet-configured",
        ),
    ],
)
def test_misplaced_replicas(
    views: list[ClusterNodeView], expected: list[tuple[RedisNodeSpec, str]]
) -> None:
    assert misplaced_replicas(PLAN, views) == expected


def test_failover_messages() -> None:
    assert failover_messages("0002", "g-0002-001", "g-0002-002") == [
        "Test Failover API called for node group 0002",
        "Failover from primary node g-0002-001 to replica node g-0002-002 completed",
        "Recovering cache nodes g-0002-001",
        "Finished recovery for cache nodes g-0002-001",
    ]
