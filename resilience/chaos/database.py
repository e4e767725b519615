"""The session database made unreachable and back: a readiness dependency lost.

StopDBInstance keeps the storage and refuses every connection, the way a database
outage looks to the pods. chaostoolkit-aws can stop an instance but has no start;
these actions write the start into the recovery journal first and make it the
rollback.
"""

from __future__ import annotations

import time
from typing import Any

from chaosaws import aws_client

from resilience.chaos.waiting import seconds_until
from resilience.safety import undo_journal

__all__ = ["start_db_instance", "stop_db_instance"]


def stop_db_instance(
    db_instance_identifier: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop the DB instance: `stopping` at once (the database shuts down), `stopped` minutes
    later; nothing answers until `start_db_instance` has brought it back."""
    undo_journal.record("start-db", {"db_instance_identifier": db_instance_identifier})
    answer = aws_client("rds", configuration, secrets).stop_db_instance(
        DBInstanceIdentifier=db_instance_identifier
    )
    return {
        "db_instance_identifier": db_instance_identifier,
        "status": answer["DBInstance"]["DBInstanceStatus"],
    }


def start_db_instance(
    db_instance_identifier: str,
    timeout: float = 300.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a stopped DB instance and wait until it is `available` (bounded by `timeout`).

    An instance still `stopping` (a stop takes minutes on AWS, and RDS refuses to start
    it meanwhile) is waited for first, within the same `timeout`. Does nothing to an
    instance that is neither, so it is safe as a rollback.
    """
    rds = aws_client("rds", configuration, secrets)
    began = time.monotonic()

    def status() -> str:
        [db] = rds.describe_db_instances(DBInstanceIdentifier=db_instance_identifier)["DBInstances"]
        return str(db["DBInstanceStatus"])

    def settled() -> tuple[bool, str]:
        now = status()
        return now != "stopping", now

    seconds_until(settled, timeout, f"DB instance {db_instance_identifier} stopped")
    if status() == "stopped":
        rds.start_db_instance(DBInstanceIdentifier=db_instance_identifier)

    def check() -> tuple[bool, str]:
        now = status()
        return now == "available", now

    remaining = max(1.0, timeout - (time.monotonic() - began))
    seconds_until(check, remaining, f"DB instance {db_instance_identifier} available")
    for undo in undo_journal.pending(undo_journal.read()):
        if (
            undo.kind == "start-db"
            and undo.target.get("db_instance_identifier") == db_instance_identifier
        ):
            undo_journal.mark_done(undo.id)
    return {
        "db_instance_identifier": db_instance_identifier,
        "seconds": round(time.monotonic() - began, 3),
    }
