"""The netem/tbf model: named cases on virtual time, and statistics with a seeded RNG."""

from __future__ import annotations

import random
import statistics

import pytest

from sandbox.cni.faults import NetemParams
from sandbox.cni.netem import (
    U32,
    CorrelatedRandom,
    NetemSpecError,
    PacketShaper,
    Verdict,
    jittered_delay_ns,
    parse_percent,
    parse_rate,
    scale_probability,
    validate,
)


def make_shaper(seed: int = 7, limit: int = 1000, **fields: float) -> PacketShaper:
    return PacketShaper(NetemParams(**fields), random.Random(seed), netem_limit_packets=limit)


def timeline(
    shaper: PacketShaper, arrivals: list[tuple[float, int]], horizon: float = 100.0
) -> list[tuple[float, int, bool]]:
    """(time, packet id, accepted) for every verdict, packets numbered from 1 in arrival
    order; verdicts are collected at each arrival and at every time the shaper names."""
    seen: list[tuple[float, int, bool]] = []
    pending = list(enumerate(arrivals, start=1))
    while True:
        next_due = shaper.next_due()
        next_arrival = pending[0][1][0] if pending else None
        candidates = [t for t in (next_due, next_arrival) if t is not None]
        if not candidates:
            return seen
        now = max(min(candidates), seen[-1][0] if seen else 0.0)
        assert now <= horizon, "the shaper never released everything"
        seen += [(now, v.packet_id, v.accept) for v in shaper.due(now)]
        while pending and pending[0][1][0] <= now:
            packet_id, (at, length) = pending.pop(0)
            shaper.arrive(packet_id, length, at)
            seen += [(now, v.packet_id, v.accept) for v in shaper.due(now)]


def delays(shaper: PacketShaper, count: int) -> list[float]:
    """Each packet alone in the shaper (1 s apart): how long it was held."""
    held = []
    for index in range(count):
        arrival = index * 10.0
        shaper.arrive(index, 100, arrival)
        release = shaper.next_due()
        assert release is not None
        release = max(release, arrival)
        assert shaper.due(release) == [Verdict(index, True)]
        held.append(release - arrival)
    return held


@pytest.mark.parametrize(
    ("fields", "arrivals", "expected"),
    [
        pytest.param(
            {},
            [(1.0, 100), (1.5, 100)],
            [(1.0, 1, True), (1.5, 2, True)],
            id="no-fault-accepts-at-once",
        ),
        pytest.param(
            {"delay_seconds": 0.04},
            [(1.0, 100), (1.01, 100)],
            [(1.04, 1, True), (1.05, 2, True)],
            id="delay-holds-each-packet-for-the-delay",
        ),
        pytest.param(
            {"loss": 1.0, "delay_seconds": 0.04},
            [(1.0, 100), (2.0, 100)],
            [(1.0, 1, False), (2.0, 2, False)],
            id="loss-of-one-drops-every-packet-at-once",
        ),
        pytest.param(
            {"rate_bytes_per_second": 1000.0, "buffer_bytes": 1000, "limit_bytes": 1000},
            [(0.0, 1000), (0.0, 500), (0.0, 500), (0.0, 1)],
            [(0.0, 1, True), (0.0, 4, False), (0.5, 2, True), (1.0, 3, True)],
            id="tbf-burst-then-rate-and-drop-beyond-limit",
        ),
        pytest.param(
            {"rate_bytes_per_second": 1000.0, "buffer_bytes": 500, "limit_bytes": 10_000},
            [(0.0, 2000), (0.0, 500)],
            [(0.0, 1, True), (2.0, 2, True)],
            id="packet-larger-than-the-bucket-leaves-a-debt",
        ),
        pytest.param(
            {
                "delay_seconds": 0.1,
                "rate_bytes_per_second": 1000.0,
                "buffer_bytes": 100,
                "limit_bytes": 10_000,
            },
            [(0.0, 100), (0.0, 100)],
            [(0.1, 1, True), (0.2, 2, True)],
            id="netem-delay-then-tbf",
        ),
    ],
)
def test_verdict_timeline(
    fields: dict[str, float],
    arrivals: list[tuple[float, int]],
    expected: list[tuple[float, int, bool]],
) -> None:
    got = timeline(make_shaper(**fields), arrivals)
    assert [(round(t, 9), i, a) for t, i, a in got] == expected


def test_netem_drops_packets_beyond_its_limit() -> None:
    shaper = make_shaper(limit=2, delay_seconds=1.0)
    for packet_id in (1, 2, 3):
        shaper.arrive(packet_id, 100, 0.0)
    assert shaper.due(0.0) == [Verdict(3, False)]
    assert shaper.due(1.0) == [Verdict(1, True), Verdict(2, True)]


def test_jitter_reorders_packets_and_releases_them_by_time_to_send() -> None:
    shaper = make_shaper(delay_seconds=0.05, jitter_seconds=0.02)
    arrivals = [(i * 0.001, 100) for i in range(200)]
    got = timeline(shaper, arrivals)
    order = [packet_id for _, packet_id, _ in got]
    assert sorted(order) == list(range(1, 201))
    assert order != sorted(order), "no packet overtook another"
    times = [t for t, _, _ in got]
    assert times == sorted(times)


def test_delay_without_jitter_draws_no_random_number() -> None:
    rng = random.Random(3)
    shaper = PacketShaper(NetemParams(delay_seconds=0.01), rng)
    state = rng.getstate()
    shaper.arrive(1, 100, 0.0)
    assert rng.getstate() == state


def test_release_all_drops_what_is_held_as_deleting_the_qdisc_does() -> None:
    shaper = make_shaper(delay_seconds=1.0)
    shaper.arrive(1, 100, 0.0)
    shaper.arrive(2, 100, 0.5)
    assert shaper.release_all() == [Verdict(1, False), Verdict(2, False)]
    assert shaper.next_due() is None


# ---- the kernel's random numbers ----


def test_get_crandom_mixes_the_last_value_as_the_kernel_does() -> None:
    rng = random.Random(11)
    mirror = random.Random(11)
    source = CorrelatedRandom(0.5, rng)
    last = mirror.getrandbits(32)
    rho = scale_probability(0.5) + 1
    for _ in range(5):
        value = mirror.getrandbits(32)
        last = (value * (U32 - rho) + last * rho) >> 32
        assert source.next() == last


@pytest.mark.parametrize(
    ("random_value", "expected"),
    [
        pytest.param(0, 90, id="lowest"),
        pytest.param(19, 109, id="highest-below-latency-plus-jitter"),
        pytest.param(20, 90, id="wraps-modulo-twice-the-jitter"),
    ],
)
def test_tabledist_without_a_table_is_uniform_around_the_latency(
    random_value: int, expected: int
) -> None:
    class Fixed(CorrelatedRandom):
        def __init__(self) -> None:
            pass

        def next(self) -> int:
            return random_value

    assert jittered_delay_ns(100, 10, Fixed()) == expected


# ---- statistics, seeded ----


def test_loss_of_a_quarter_drops_a_quarter_of_ten_thousand_packets() -> None:
    shaper = make_shaper(seed=2024, loss=0.25)
    for packet_id in range(10_000):
        shaper.arrive(packet_id, 100, packet_id * 0.001)
    assert shaper.dropped + shaper.accepted == 10_000
    assert 0.24 <= shaper.dropped / 10_000 <= 0.26


def test_jitter_spreads_delays_uniformly_within_its_bounds() -> None:
    held = delays(make_shaper(seed=5, delay_seconds=0.1, jitter_seconds=0.02), 2000)
    assert all(0.08 - 1e-9 <= d < 0.12 for d in held)
    assert min(held) < 0.081 and max(held) > 0.119
    assert statistics.mean(held) == pytest.approx(0.1, abs=0.001)


def _lag_one_correlation(values: list[float]) -> float:
    return statistics.correlation(values[:-1], values[1:])


def test_delay_correlation_makes_successive_delays_alike_when_jitter_spans_the_u32() -> None:
    plain = delays(make_shaper(seed=9, delay_seconds=2.0, jitter_seconds=2.0), 2000)
    correlated = delays(
        make_shaper(seed=9, delay_seconds=2.0, jitter_seconds=2.0, delay_correlation=0.75), 2000
    )
    assert abs(_lag_one_correlation(plain)) < 0.06
    assert _lag_one_correlation(correlated) > 0.6


def test_delay_correlation_is_scrambled_by_the_modulo_for_small_jitter_as_in_the_kernel() -> None:
    """tabledist takes the correlated u32 modulo 2*jitter (ns): for 20 ms that keeps only
    its low bits, so successive delays are as unrelated as without correlation."""
    correlated = delays(
        make_shaper(seed=9, delay_seconds=0.1, jitter_seconds=0.02, delay_correlation=0.75), 2000
    )
    assert abs(_lag_one_correlation(correlated)) < 0.06


def _loss_runs(shaper: PacketShaper, count: int) -> list[bool]:
    lost = []
    for packet_id in range(count):
        shaper.arrive(packet_id, 100, float(packet_id))
        (verdict,) = shaper.due(float(packet_id))
        lost.append(not verdict.accept)
    return lost


def test_loss_correlation_makes_losses_follow_losses_and_rarer_as_tc_netem_warns() -> None:
    plain = _loss_runs(make_shaper(seed=4, loss=0.25), 10_000)
    correlated = _loss_runs(make_shaper(seed=4, loss=0.25, loss_correlation=0.5), 10_000)
    assert abs(_lag_one_correlation([float(lost) for lost in plain])) < 0.05
    assert _lag_one_correlation([float(lost) for lost in correlated]) > 0.2
    # averaging narrows get_crandom's distribution: far fewer values fall below the
    # threshold (25 % asked, about 7 % dropped), the "bad behavior" tc-netem(8) names
    assert sum(correlated) < 0.1 * len(correlated) < 0.24 * len(plain) < sum(plain)


def test_tbf_releases_at_its_rate_and_drops_beyond_its_limit() -> None:
    rate, packet = 100_000.0, 1000
    shaper = make_shaper(rate_bytes_per_second=rate, buffer_bytes=5000, limit_bytes=20_000)
    arrivals = [(i * packet / (2 * rate), packet) for i in range(1000)]  # twice the rate, 5 s
    got = timeline(shaper, arrivals)
    accepted = [t for t, _, ok in got if ok]
    # burst (5 packets) + 20 waiting + rate * duration of arrivals
    assert len(accepted) == pytest.approx(5 + 20 + rate * 5.0 / packet, abs=2)
    steady = accepted[10:]
    assert (len(steady) - 1) * packet / (steady[-1] - steady[0]) == pytest.approx(rate, rel=0.01)
    assert shaper.dropped == 1000 - len(accepted)


# ---- validation and Chaos Mesh's strings ----


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        pytest.param(NetemParams(), None, id="nothing-is-fine"),
        pytest.param(NetemParams(loss=1.5), "loss must be within 0..1", id="loss-above-one"),
        pytest.param(NetemParams(delay_seconds=-1), "delay_seconds must be", id="negative-delay"),
        pytest.param(
            NetemParams(rate_bytes_per_second=10, limit_bytes=10),
            "burst is required",
            id="rate-without-buffer",
        ),
        pytest.param(
            NetemParams(rate_bytes_per_second=10, buffer_bytes=10),
            "limit is required",
            id="rate-without-limit",
        ),
        pytest.param(NetemParams(jitter_seconds=3.0), "s32", id="jitter-too-large"),
    ],
)
def test_validate(params: NetemParams, problem: str | None) -> None:
    problems = validate(params)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in text for text in problems), problems
        with pytest.raises(NetemSpecError):
            PacketShaper(params, random.Random(0))


@pytest.mark.parametrize(
    ("text", "probability"),
    [
        pytest.param("25", 0.25, id="integer"),
        pytest.param("25.5", 0.255, id="fraction"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("100", 1.0, id="all"),
    ],
)
def test_parse_percent(text: str, probability: float) -> None:
    assert parse_percent(text) == pytest.approx(probability)


@pytest.mark.parametrize("text", ["abc", "101", "-1"])
def test_parse_percent_refuses(text: str) -> None:
    with pytest.raises(NetemSpecError):
        parse_percent(text)


@pytest.mark.parametrize(
    ("text", "bytes_per_second"),
    [
        pytest.param("100bps", 100.0, id="bps-is-bytes"),
        pytest.param("1mbps", 1_000_000.0, id="mbps-is-megabytes"),
        pytest.param("10kbit", 1250.0, id="kbit-is-1000-bits"),
        pytest.param("1mbit", 125_000.0, id="mbit"),
        pytest.param("1gbit", 125_000_000.0, id="gbit"),
        pytest.param("2kbps", 2000.0, id="kbps"),
        pytest.param("8000", 1000.0, id="bare-number-is-bits"),
        pytest.param("8bit", 1.0, id="bit"),
        pytest.param("1kibit", 128.0, id="iec-prefix"),
        pytest.param("1.5MBit", 187_500.0, id="case-insensitive-fraction"),
    ],
)
def test_parse_rate_in_tc_units(text: str, bytes_per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(bytes_per_second)


@pytest.mark.parametrize("text", ["", "fast", "10k", "10xbit", "mbit"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(NetemSpecError):
        parse_rate(text)
