"""The capacity model (resilience/load/capacity.py): a release manager's figures -> users,
waits and spawn rate (tables), what a hold achieved read back from a timeline, and the
shortfall check with its twin: a seeded weak load fails naming the figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.errors import InvalidInputError
from resilience.load.capacity import (
    AchievedLoad,
    Capacity,
    achieved_load,
    hold_span,
    plan_capacity,
    shortfalls,
)
from resilience.load.certify import plan_for
from resilience.load.profile import load_profile, parse_capacity
from resilience.load.requests import RequestRecord, RequestTimeline
from tests.load.locustrun import LOADTESTS


@pytest.mark.parametrize(
    ("capacity", "rest_users", "ws_users", "read_weight", "spawn_rate"),
    [
        pytest.param(Capacity(), 893, 10000, 44, 36.31, id="defaults"),
        pytest.param(
            Capacity(peak_rps=100, sockets=0, write_share=5 / 11.8, ramp_seconds=10),
            96,
            0,
            6,
            9.6,
            id="rest-only-at-the-locustfile-default-mix",
        ),
        pytest.param(
            Capacity(peak_rps=40, sockets=30, write_share=0.4, socket_task_seconds=1),
            30,
            30,
            19,
            60 / 300,
            id="sockets-carry-part-of-the-writes",
        ),
        pytest.param(
            Capacity(peak_rps=200, sockets=10, write_share=0.5, rest_wait_seconds=0.5),
            96,
            10,
            4,
            106 / 300,
            id="write-heavy-fast-users",
        ),
    ],
)
def test_the_plan_gives_each_kind_of_user(
    capacity: Capacity, rest_users: int, ws_users: int, read_weight: int, spawn_rate: float
) -> None:
    plan = plan_capacity(capacity)
    assert (plan.rest_users, plan.ws_users, plan.read_weight) == (
        rest_users,
        ws_users,
        read_weight,
    )
    assert plan.spawn_rate == pytest.approx(spawn_rate, abs=0.01)
    assert plan.run_time == capacity.ramp_seconds + capacity.hold_seconds
    # the plan reaches the target, not much above it, with about the write share asked
    assert capacity.peak_rps <= plan.planned_rps <= capacity.peak_rps * 1.03 + 2
    # task weights are integers: the share is as near as one read more or less gets
    assert plan.planned_write_share == pytest.approx(capacity.write_share, abs=0.015)
    mean = capacity.rest_wait_seconds
    assert plan.rest_wait == (mean / 2, mean * 1.5)
    assert plan.env()["HF_REST_USERS"] == str(rest_users)
    assert plan.env()["HF_WS_WAIT_MAX"] == f"{capacity.socket_task_seconds * 1.5:g}"


@pytest.mark.parametrize(
    ("capacity", "named"),
    [
        pytest.param(
            Capacity(peak_rps=100, sockets=10000, write_share=0.2), "raise", id="sockets-out-write"
        ),
        pytest.param(
            Capacity(peak_rps=100, sockets=0, write_share=0.0), "every write", id="no-writes"
        ),
        pytest.param(
            Capacity(peak_rps=100, sockets=0, write_share=0.001), "too small", id="tiny-share"
        ),
    ],
)
def test_a_target_no_mix_of_users_gives_is_bad_input(capacity: Capacity, named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        plan_capacity(capacity)


def record(t: int, kind: str, name: str, ok: int, failed: int = 0) -> RequestRecord:
    return RequestRecord(t, kind, name, ok, failed, {})


def timeline(*records: RequestRecord) -> RequestTimeline:
    return RequestTimeline(records=records)


def test_the_hold_is_what_is_read_back() -> None:
    seen = timeline(
        record(100, "GET", "/api/v1/sessions/[id]", 500),  # the ramp: not counted
        record(100, "WSCONN", "connect", 8),
        *[record(t, "GET", "/api/v1/sessions/[id]", 60, 4) for t in range(110, 120)],
        *[record(t, "PUT", "/api/v1/sessions/[id]", 15, 1) for t in range(110, 120)],
        *[record(t, "LEDGER", "read verified", 99) for t in range(110, 120)],  # not traffic
        record(111, "WSCONN", "connect", 2),  # two more at 111: ten held
        record(115, "WS", "disconnect", 1, 2),  # three lost: seven from 115 on
    )
    got = achieved_load(seen, 110.0, 120.0)
    assert got == AchievedLoad(seconds=10.0, rps=80.0, sockets=10, write_share=0.2)
    assert hold_span(Capacity(ramp_seconds=10), (100.0, 120.0)) == (110.0, 120.0)


def test_sockets_the_ramp_opened_are_held_in_a_hold_without_a_connect() -> None:
    seen = timeline(
        record(100, "WSCONN", "connect", 8),
        record(112, "GET", "/api/v1/sessions/[id]", 10),
    )
    assert achieved_load(seen, 110.0, 120.0).sockets == 8
    assert achieved_load(seen, 95.0, 99.0).sockets == 0


TARGET = Capacity(peak_rps=80, sockets=10, write_share=0.2, tolerance=0.05)


def test_a_load_that_reached_the_target_has_no_shortfall() -> None:
    assert shortfalls(TARGET, AchievedLoad(600, rps=77.0, sockets=10, write_share=0.16)) == []


@pytest.mark.parametrize(
    ("achieved", "figure"),
    [
        pytest.param(AchievedLoad(60, 70.0, 10, 0.2), "capacity peak_rps: achieved 70", id="rps"),
        pytest.param(AchievedLoad(60, 80.0, 9, 0.2), "capacity sockets: achieved 9", id="sockets"),
        pytest.param(
            AchievedLoad(600, 80.0, 10, 0.1), "capacity write_share: achieved 0.100", id="writes"
        ),
        pytest.param(AchievedLoad(0, 0, 0, None), "capacity write_share: achieved none", id="none"),
    ],
)
def test_a_seeded_shortfall_fails_naming_the_figure(achieved: AchievedLoad, figure: str) -> None:
    found = shortfalls(TARGET, achieved)
    assert [line for line in found if line.startswith(figure)], found


def test_the_release_profile_is_planned_from_its_capacity(tmp_path: Path) -> None:
    profile = load_profile(LOADTESTS / "profiles" / "release.yaml")
    assert profile.capacity is not None
    plan = plan_for(profile, "http://127.0.0.1:9", tmp_path, None)
    expected = plan_capacity(profile.capacity)
    assert (plan.users, plan.shape, plan.run_time) == (expected.users, None, expected.run_time)
    assert plan.env["HF_WS_USERS"] == str(profile.capacity.sockets)
    assert (plan.processes, plan.workers) == (profile.load.processes, 0)
    forced = plan_for(profile, "http://127.0.0.1:9", tmp_path, None, processes=3)
    assert (forced.processes, forced.workers) == (3, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"peak_rps": "lots"}, "capacity.peak_rps: expected a number", id="type"),
        pytest.param({"sockets": 1.5}, "capacity.sockets: expected an integer", id="int"),
        pytest.param({"write_share": 2}, "write_share: expected a number between", id="share"),
        pytest.param({"hold_seconds": 0}, "capacity.hold_seconds: expected a positive", id="zero"),
        pytest.param({"rps": 10}, "capacity.rps: unknown key", id="unknown"),
    ],
)
def test_a_bad_capacity_is_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse_capacity(data)
