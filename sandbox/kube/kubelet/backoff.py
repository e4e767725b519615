"""CrashLoopBackOff as pure functions: client-go's `flowcontrol.Backoff` as the kubelet uses it.

The kubelet keeps one entry per container (`backoff`, `last_update`). When a
container has exited, it may restart only once `backoff` has passed since its
`finishedAt`; each restart doubles the entry (capped), and an entry older than
the reset window (10 min upstream, `2 * MaxContainerBackOff`) starts again.

Worked example (initial 10 s, max 300 s), a container that crashes at once:
    crash 1: no entry          -> restart now,            entry 10 s
    crash 2: 10 s since exit?  -> wait 10 s, restart,      entry 20 s
    crash 3:                   -> wait 20 s, restart,      entry 40 s
    ... 80, 160, 300, 300 ...; 10 min of running resets to "restart now".
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.kube.settings import ControlPlaneSettings


@dataclass(frozen=True)
class BackoffPolicy:
    initial_seconds: float = 10.0
    max_seconds: float = 300.0
    reset_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> BackoffPolicy:
        return cls(
            settings.container_backoff_initial_seconds,
            settings.container_backoff_max_seconds,
            settings.container_backoff_reset_seconds,
        )


@dataclass(frozen=True)
class BackoffEntry:
    backoff_seconds: float
    last_update: float  # monotonic seconds of the last restart


def expired(entry: BackoffEntry, event_time: float, policy: BackoffPolicy) -> bool:
    """Stable long enough since the last restart that the back-off starts over."""
    return event_time - entry.last_update > policy.reset_seconds


def remaining_delay(
    entry: BackoffEntry | None, finished_at: float, now: float, policy: BackoffPolicy
) -> float:
    """Seconds to wait before restarting a container that exited at `finished_at`."""
    if entry is None or expired(entry, finished_at, policy):
        return 0.0
    return max(0.0, finished_at + entry.backoff_seconds - now)


def after_restart(
    entry: BackoffEntry | None, event_time: float, now: float, policy: BackoffPolicy
) -> BackoffEntry:
    """The entry once a restart happens (`Backoff.Next`)."""
    if entry is None or expired(entry, event_time, policy):
        return BackoffEntry(policy.initial_seconds, now)
    return BackoffEntry(min(entry.backoff_seconds * 2, policy.max_seconds), now)


def delay_sequence(policy: BackoffPolicy, crashes: int) -> list[float]:
    """Delays before each restart of a container that crashes as soon as it starts."""
    delays, entry, now = [], None, 0.0
    for _ in range(crashes):
        delay = remaining_delay(entry, now, now, policy)
        now += delay
        entry = after_restart(entry, now, now, policy)
        delays.append(delay)
    return delays
