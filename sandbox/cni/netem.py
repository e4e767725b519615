"""What tc netem and tbf do to each packet, as a pure model the netem worker drives.

This kernel has no netem, so the pod network queues the packets of a netem fault to a
userspace worker (NFQUEUE) that gives each one a verdict: drop it, or accept it at
the time the kernel's qdiscs would have sent it. `PacketShaper` is that decision,
with no clock and no I/O: the caller says when each packet arrived and asks which
verdicts are due at a given time, so tests run on virtual time with a seeded
`random.Random`.

Semantics followed (Linux net/sched/sch_netem.c, 6.x, and net/sched/sch_tbf.c):

- Random numbers are the kernel's: `get_crandom` draws a uniform u32 and, when a
  correlation rho is set, mixes it with the previous value of the same generator,
  `answer = (value * (2^32 - (rho+1)) + last * (rho+1)) >> 32`, one state per use
  (delay, loss), all drawing from one PRNG. (tc-netem(8) calls loss correlation
  "deprecated due to the noticed bad behavior": averaging narrows the distribution,
  so a correlated 25 % loss drops fewer than 25 %; we reproduce that, as Chaos Mesh
  on a real node would.)
- Loss (`loss_event`, CLG_RANDOM): drop when `loss != 0 and loss >= get_crandom()`,
  loss being the probability scaled to u32. No random number is drawn when loss is 0.
- Delay (`tabledist` without a distribution table, which is how Chaos Mesh's
  chaos-daemon builds the qdisc over netlink): `(rnd % (2*jitter)) + latency - jitter`
  nanoseconds, uniform in [latency - jitter, latency + jitter); exactly `latency`
  with no random draw when jitter is 0. `time_to_send = now + delay`. The modulo
  keeps only the low bits of the correlated u32, so for jitter well below 2 s the
  delay correlation has next to no effect; we reproduce that too.
- netem's queue (tfifo) releases packets in `time_to_send` order, FIFO among equal
  times, so jitter reorders packets; more than `limit` packets queued (1000, tc's
  default) are dropped.
- tbf (Chaos Mesh's `bandwidth` action): a FIFO behind a token bucket of depth
  `buffer` bytes filling at `rate` bytes/s (tokens kept as time, N(t) <= B/R); the head
  packet of length S leaves once S/R tokens are there and takes them. A packet that
  would make the bytes waiting exceed `limit` is dropped (the bfifo behind tbf).
  Packets enter tbf when netem releases them (netem first, then tbf).

One deliberate difference: loopback's MTU is 64 KiB, so a packet can be larger than
the bucket; the kernel would segment a GSO packet at the MSS first (`tbf_segment`),
which we cannot do to a queued packet. Here such a packet leaves once the bucket is
full and leaves it in debt (negative tokens), which keeps the average at `rate`.
Lengths are the IP packet's (no link-layer header).
"""

from __future__ import annotations

import heapq
import math
import random
import re
from collections import deque
from dataclasses import dataclass

from sandbox.cni.faults import NetemParams

U32 = 1 << 32
U32_MAX = U32 - 1
NS_PER_SECOND = 1_000_000_000
NETEM_DEFAULT_LIMIT_PACKETS = 1000  # tc netem's default `limit`


class NetemSpecError(ValueError):
    """A netem or tbf parameter that tc (or Chaos Mesh's webhook) would refuse."""


def scale_probability(probability: float) -> int:
    """A probability as the kernel keeps it: a u32 (netlink.Percentage2u32 truncates)."""
    return min(U32_MAX, max(0, int(probability * U32_MAX)))


class CorrelatedRandom:
    """`struct crndstate` with `get_crandom`: a u32 stream whose values lean on the last one.

    >>> rng = random.Random(1)
    >>> uncorrelated = CorrelatedRandom(0.0, rng)
    >>> 0 <= uncorrelated.next() < 2**32
    True
    """

    def __init__(self, correlation: float, rng: random.Random) -> None:
        self._rho = scale_probability(correlation)
        self._rng = rng
        self._last = rng.getrandbits(32)  # init_crandom seeds `last` with a random u32

    def next(self) -> int:
        value = self._rng.getrandbits(32)
        if self._rho == 0:
            return value
        rho = self._rho + 1
        answer = (value * (U32 - rho) + self._last * rho) >> 32
        self._last = answer
        return answer


def jittered_delay_ns(latency_ns: int, jitter_ns: int, source: CorrelatedRandom) -> int:
    """`tabledist` with no table: uniform in [latency - jitter, latency + jitter).

    >>> class Fixed:
    ...     def next(self) -> int: return 5
    >>> jittered_delay_ns(100, 10, Fixed())  # (5 % 20) + 100 - 10
    95
    """
    if jitter_ns == 0:
        return latency_ns
    return (source.next() % (2 * jitter_ns)) + latency_ns - jitter_ns


@dataclass(frozen=True)
class Verdict:
    """What to tell the kernel about one queued packet."""

    packet_id: int
    accept: bool


def validate(params: NetemParams) -> list[str]:
    """What is wrong with `params` (empty when nothing), in the words of tc's errors."""
    problems = []
    for name in ("delay_seconds", "jitter_seconds", "rate_bytes_per_second"):
        value = getattr(params, name)
        if not math.isfinite(value) or value < 0:
            problems.append(f"{name} must be a finite number >= 0, not {value!r}")
    for name in ("delay_correlation", "loss", "loss_correlation"):
        value = getattr(params, name)
        if not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be within 0..1, not {value!r}")
    if params.jitter_seconds * NS_PER_SECOND >= 2**31:
        problems.append("jitter_seconds must be below 2.147 s (the kernel keeps it in an s32)")
    if params.rate_bytes_per_second > 0:
        if params.buffer_bytes <= 0:
            problems.append("a rate needs buffer_bytes > 0 (tbf: burst is required)")
        if params.limit_bytes <= 0:
            problems.append("a rate needs limit_bytes > 0 (tbf: limit is required)")
    return problems


@dataclass
class _TokenBucket:
    """tbf's state: tokens as seconds of sending, at checkpoint `t_c`."""

    rate: float  # bytes per second
    depth: float  # seconds (buffer / rate)
    limit: int  # bytes waiting, at most
    tokens: float
    t_c: float | None = None  # None: the bucket has been full forever
    last_departure: float = -math.inf
    waiting_bytes: int = 0

    def tokens_at(self, when: float) -> float:
        if self.t_c is None:
            return self.depth
        return min(self.depth, self.tokens + (when - self.t_c))

    def departure(self, entry: float, length: int) -> float:
        """When a packet entering at `entry` leaves (FIFO behind those already in)."""
        start = max(entry, self.last_departure)
        cost = length / self.rate
        needed = min(cost, self.depth)  # a packet larger than the bucket: see the module doc
        available = self.tokens_at(start)
        leave = start if available >= needed else start + (needed - available)
        self.tokens = self.tokens_at(leave) - cost
        self.t_c = leave
        self.last_departure = leave
        return leave


class PacketShaper:
    """netem (loss, delay, jitter, correlation) then tbf (rate, buffer, limit), per packet.

    Feed it `arrive(packet_id, length, now)` in arrival order, and ask `due(now)` for
    the verdicts whose time has come; `next_due()` says when to ask next. Times are
    seconds on any monotonic clock.

    Worked example: delay 40 ms, no jitter, no loss. A packet arriving at t=1.000 is
    held; `next_due()` is 1.040; `due(1.039)` is empty; `due(1.040)` accepts it.
    """

    def __init__(
        self,
        params: NetemParams,
        rng: random.Random,
        *,
        netem_limit_packets: int = NETEM_DEFAULT_LIMIT_PACKETS,
    ) -> None:
        problems = validate(params)
        if problems:
            raise NetemSpecError("; ".join(problems))
        self.params = params
        self._loss = scale_probability(params.loss)
        self._latency_ns = round(params.delay_seconds * NS_PER_SECOND)
        self._jitter_ns = round(params.jitter_seconds * NS_PER_SECOND)
        self._netem_limit = netem_limit_packets
        self._delay_random = CorrelatedRandom(params.delay_correlation, rng)
        self._loss_random = CorrelatedRandom(params.loss_correlation, rng)
        self._tfifo: list[tuple[float, int, int, int]] = []  # (time_to_send, seq, id, length)
        self._sequence = 0
        self._bucket = (
            _TokenBucket(
                rate=params.rate_bytes_per_second,
                depth=params.buffer_bytes / params.rate_bytes_per_second,
                limit=params.limit_bytes,
                tokens=params.buffer_bytes / params.rate_bytes_per_second,
            )
            if params.rate_bytes_per_second > 0
            else None
        )
        self._tbf: deque[tuple[float, int, int]] = deque()  # (departure, id, length)
        self._ready: list[Verdict] = []
        self.dropped = 0
        self.accepted = 0

    @property
    def held(self) -> int:
        """Packets decided on but not yet released (netem's queue plus tbf's)."""
        return len(self._tfifo) + len(self._tbf) + len(self._ready)

    def arrive(self, packet_id: int, length: int, now: float) -> None:
        """netem_enqueue: drop by loss or by limit, else hold until `time_to_send`."""
        self._advance(now)
        if self._loss and self._loss >= self._loss_random.next():
            self._drop(packet_id)
            return
        if len(self._tfifo) >= self._netem_limit:
            self._drop(packet_id)
            return
        delay_ns = jittered_delay_ns(self._latency_ns, self._jitter_ns, self._delay_random)
        time_to_send = now + delay_ns / NS_PER_SECOND
        heapq.heappush(self._tfifo, (time_to_send, self._sequence, packet_id, length))
        self._sequence += 1
        self._advance(now)

    def next_due(self) -> float | None:
        """The earliest time a verdict falls due (-inf: one is due now; None: nothing held)."""
        if self._ready:
            return -math.inf
        times = []
        if self._tfifo:
            times.append(self._tfifo[0][0])
        if self._tbf:
            times.append(self._tbf[0][0])
        return min(times) if times else None

    def due(self, now: float) -> list[Verdict]:
        """The verdicts due by `now`, in the order the kernel would release the packets."""
        self._advance(now)
        ready, self._ready = self._ready, []
        return ready

    def release_all(self) -> list[Verdict]:
        """Every packet still held, as drops: what deleting the qdisc does (tfifo_reset)."""
        held = [
            *self._ready,
            *(Verdict(entry[2], False) for entry in sorted(self._tfifo)),
            *(Verdict(packet_id, False) for _, packet_id, _ in self._tbf),
        ]
        self._ready, self._tfifo = [], []
        self._tbf.clear()
        return held

    def _advance(self, now: float) -> None:
        while self._tfifo and self._tfifo[0][0] <= now:
            time_to_send, _, packet_id, length = heapq.heappop(self._tfifo)
            if self._bucket is None:
                self._accept(packet_id)
            else:
                self._enter_tbf(packet_id, length, time_to_send)
        self._leave_tbf(now)

    def _enter_tbf(self, packet_id: int, length: int, entry: float) -> None:
        bucket = self._bucket
        assert bucket is not None
        self._leave_tbf(entry)
        if bucket.waiting_bytes + length > bucket.limit:
            self._drop(packet_id)
            return
        leave = bucket.departure(entry, length)
        self._tbf.append((leave, packet_id, length))
        bucket.waiting_bytes += length

    def _leave_tbf(self, now: float) -> None:
        bucket = self._bucket
        while self._tbf and self._tbf[0][0] <= now:
            _, packet_id, length = self._tbf.popleft()
            assert bucket is not None
            bucket.waiting_bytes -= length
            self._accept(packet_id)

    def _accept(self, packet_id: int) -> None:
        self.accepted += 1
        self._ready.append(Verdict(packet_id, True))

    def _drop(self, packet_id: int) -> None:
        self.dropped += 1
        self._ready.append(Verdict(packet_id, False))


# ---- Chaos Mesh's strings ----


def parse_percent(text: str) -> float:
    """A NetworkChaos percentage (`loss`, `correlation`) as a probability: "25.5" -> 0.255.

    Chaos Mesh reads them with strconv.ParseFloat; tc takes 0..100.

    >>> parse_percent("25")
    0.25
    """
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise NetemSpecError(f'invalid percentage "{text}"') from None
    if not 0.0 <= value <= 100.0:
        raise NetemSpecError(f'percentage "{text}" is not within 0..100')
    return value / 100.0


_RATE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)")
_RATE_PREFIXES = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_RATE_IEC_PREFIXES = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def parse_rate(text: str) -> float:
    """A rate in tc's units (tc(8), RATES) as bytes per second.

    `bit` (or a bare number) and `kbit`/`mbit`/`gbit`/`tbit` are bits per second,
    `bps`/`kbps`/`mbps`/`gbps`/`tbps` bytes per second; SI prefixes are powers of
    1000 (kbit = 1000 bits), IEC ones (`kibit`, `mibps`, ...) powers of 1024.

    >>> parse_rate("10kbit"), parse_rate("1mbps"), parse_rate("100bps")
    (1250.0, 1000000.0, 100.0)
    """
    match = _RATE.fullmatch(text.strip().lower())
    if match is None:
        raise NetemSpecError(f'invalid rate "{text}" (like "1mbit", "100kbps")')
    number, unit = float(match.group(1)), match.group(2)
    if unit == "":
        return number / 8
    for suffix, bytes_per_unit in (("bit", 1 / 8), ("bps", 1.0)):
        if not unit.endswith(suffix):
            continue
        prefix = unit.removesuffix(suffix)
        scale = _RATE_PREFIXES.get(prefix) or _RATE_IEC_PREFIXES.get(prefix)
        if scale is not None:
            return number * scale * bytes_per_unit
    raise NetemSpecError(f'invalid rate unit in "{text}" (bit, kbit, mbit, bps, kbps, mbps, ...)')
