"""The "RDS" DB instance status as a state machine (pure).

Statuses carry the names RDS reports in `DescribeDBInstances`
(`DBInstanceStatus`); a Multi-AZ failover runs `available -> rebooting ->
available`, and so does a plain reboot. StopDBInstance runs `available ->
stopping -> stopped`, StartDBInstance `stopped -> starting -> available`. An
action that RDS would refuse in the current status raises
`InvalidDBInstanceState`, as RDS answers `InvalidDBInstanceState` (HTTP 400)::

    >>> next_status(RdsStatus.AVAILABLE, RdsAction.FAILOVER)
    <RdsStatus.REBOOTING: 'rebooting'>
    >>> next_status(RdsStatus.REBOOTING, RdsAction.FAILOVER_COMPLETED)
    <RdsStatus.AVAILABLE: 'available'>
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from sandbox.infra.supervisor import InfraError


class RdsStatus(StrEnum):
    STOPPED = "stopped"  # not running (before start, after stop)
    CREATING = "creating"
    AVAILABLE = "available"
    REBOOTING = "rebooting"
    STOPPING = "stopping"
    STARTING = "starting"
    FAILED = "failed"


class RdsAction(StrEnum):
    CREATE = "create"
    CREATED = "created"
    FAILOVER = "failover"
    FAILOVER_COMPLETED = "failover-completed"
    REBOOT = "reboot"
    REBOOT_COMPLETED = "reboot-completed"
    FAIL = "fail"
    STOP = "stop"
    STOPPED = "stopped"
    # StopDBInstance / StartDBInstance (the sandbox's own start and stop are CREATE and STOP)
    STOP_INSTANCE = "stop-instance"
    INSTANCE_STOPPED = "instance-stopped"
    START_INSTANCE = "start-instance"
    INSTANCE_STARTED = "instance-started"


class RdsEvent(NamedTuple):
    """One entry of the instance's event log, like `DescribeEvents` returns."""

    time: datetime
    message: str


class InvalidDBInstanceState(InfraError):
    """The action is not allowed in the instance's current status."""


TRANSITIONS: dict[tuple[RdsStatus, RdsAction], RdsStatus] = {
    (RdsStatus.STOPPED, RdsAction.CREATE): RdsStatus.CREATING,
    (RdsStatus.CREATING, RdsAction.CREATED): RdsStatus.AVAILABLE,
    (RdsStatus.CREATING, RdsAction.FAIL): RdsStatus.FAILED,
    (RdsStatus.AVAILABLE, RdsAction.FAILOVER): RdsStatus.REBOOTING,
    (RdsStatus.REBOOTING, RdsAction.FAILOVER_COMPLETED): RdsStatus.AVAILABLE,
    (RdsStatus.AVAILABLE, RdsAction.REBOOT): RdsStatus.REBOOTING,
    (RdsStatus.REBOOTING, RdsAction.REBOOT_COMPLETED): RdsStatus.AVAILABLE,
    (RdsStatus.REBOOTING, RdsAction.FAIL): RdsStatus.FAILED,
    (RdsStatus.CREATING, RdsAction.STOP): RdsStatus.STOPPING,
    (RdsStatus.AVAILABLE, RdsAction.STOP): RdsStatus.STOPPING,
    (RdsStatus.REBOOTING, RdsAction.STOP): RdsStatus.STOPPING,
    (RdsStatus.FAILED, RdsAction.STOP): RdsStatus.STOPPING,
    (RdsStatus.STOPPING, RdsAction.STOPPED): RdsStatus.STOPPED,
    (RdsStatus.AVAILABLE, RdsAction.STOP_INSTANCE): RdsStatus.STOPPING,
    (RdsStatus.STOPPING, RdsAction.INSTANCE_STOPPED): RdsStatus.STOPPED,
    (RdsStatus.STOPPED, RdsAction.START_INSTANCE): RdsStatus.STARTING,
    (RdsStatus.STARTING, RdsAction.INSTANCE_STARTED): RdsStatus.AVAILABLE,
    (RdsStatus.STARTING, RdsAction.FAIL): RdsStatus.FAILED,
    (RdsStatus.STARTING, RdsAction.STOP): RdsStatus.STOPPING,
}

EVENT_MESSAGES: dict[RdsAction, str] = {
    RdsAction.CREATED: "DB instance created",
    RdsAction.FAILOVER: "Multi-AZ instance failover started.",
    RdsAction.FAILOVER_COMPLETED: "Multi-AZ instance failover completed.",
    RdsAction.REBOOT: "DB instance shutdown",
    RdsAction.REBOOT_COMPLETED: "DB instance restarted",
    RdsAction.STOPPED: "DB instance shutdown",
    RdsAction.INSTANCE_STOPPED: "DB instance stopped",
    RdsAction.START_INSTANCE: "DB instance is being started",
    RdsAction.INSTANCE_STARTED: "DB instance started",
}


class ConnectionFate(StrEnum):
    """What the old primary's clients see when it fails."""

    BLACKHOLE = "blackhole"  # silence: packets dropped, connects time out (a failed host)
    RESET = "reset"  # a RST on every connection at once, connects refused


@dataclass(frozen=True)
class RdsTimings:
    """How long the instance's operations take: `python -m sandbox serve --rds-*` flags.

    `failover_seconds`: the RDS User Guide ("Failing over a Multi-AZ DB instance for
    Amazon RDS"): "Failover times are typically 60-120 seconds." The default is the
    typical range's low end; the suites' write-gap limit is its high end.

    `reboot_seconds`: how long a rebooted primary stays down, and how long a failed
    primary's host stays silent (from its failure) before it returns as the new
    standby. AWS gives no typical figure for a reboot ("depends on the crash recovery
    process", RDS User Guide, "Rebooting a DB instance"); one failover's length is taken.

    `stop_seconds`, `start_seconds`: StopDBInstance and StartDBInstance take minutes
    on AWS, with no documented figure. The experiments and the suite that stop the
    database are about the outage, not its length (they say so), so `stopping` lasts
    30 s here and `starting` 60 s; the flags take AWS's minutes when that matters.

    `failover_connections`: how the failed primary's connections end. A failed host
    sends nothing (the Aurora PostgreSQL guide on fast failover asks clients for TCP
    keepalive and socket timeouts because of exactly that); `reset` is the gentler
    alternative, a RST on each.
    """

    failover_seconds: float = 60.0
    reboot_seconds: float = 60.0
    stop_seconds: float = 30.0
    start_seconds: float = 60.0
    failover_connections: ConnectionFate = ConnectionFate.BLACKHOLE
    dns_ttl_seconds: int = 5  # Route 53 records of RDS endpoints (Aurora DB admin handbook)


def next_status(current: RdsStatus, action: RdsAction) -> RdsStatus:
    """The status after `action`; `InvalidDBInstanceState` when RDS would refuse it."""
    try:
        return TRANSITIONS[current, action]
    except KeyError:
        raise InvalidDBInstanceState(
            f"cannot {action} a DB instance whose status is {current}"
        ) from None


DEFAULT_TIMINGS = RdsTimings()
