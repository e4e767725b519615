"""The "RDS" DB instance status as a state machine (pure).

Statuses carry the names RDS reports in `DescribeDBInstances`
(`DBInstanceStatus`); a Multi-AZ failover runs `available -> rebooting ->
available`, and so does a plain reboot. An action that RDS would refuse in the current status raises
`InvalidDBInstanceState`, as RDS answers `InvalidDBInstanceState` (HTTP 400)::

    >>> next_status(RdsStatus.AVAILABLE, RdsAction.FAILOVER)
    <RdsStatus.REBOOTING: 'rebooting'>
    >>> next_status(RdsStatus.REBOOTING, RdsAction.FAILOVER_COMPLETED)
    <RdsStatus.AVAILABLE: 'available'>
"""

from __future__ import annotations

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
}

EVENT_MESSAGES: dict[RdsAction, str] = {
    RdsAction.CREATED: "DB instance created",
    RdsAction.FAILOVER: "Multi-AZ instance failover started.",
    RdsAction.FAILOVER_COMPLETED: "Multi-AZ instance failover completed.",
    RdsAction.REBOOT: "DB instance shutdown",
    RdsAction.REBOOT_COMPLETED: "DB instance restarted",
    RdsAction.STOPPED: "DB instance shutdown",
}


def next_status(current: RdsStatus, action: RdsAction) -> RdsStatus:
    """The status after `action`; `InvalidDBInstanceState` when RDS would refuse it."""
    try:
        return TRANSITIONS[current, action]
    except KeyError:
        raise InvalidDBInstanceState(
            f"cannot {action} a DB instance whose status is {current}"
        ) from None
