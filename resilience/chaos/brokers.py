"""Loss of RabbitMQ broker nodes through EC2, and its undo.

The seed runs its three brokers on EC2 instances of their own (`rabbitmq-1..3`,
tagged `harmonyflow:role=rabbitmq`). A broker node is lost the way it is lost on
AWS: its instance stops. Each stop is written to the recovery journal first, so a
Ctrl-C, a SIGTERM or `resilience recover` after a `kill -9` starts the brokers
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaosaws import aws_client
from chaoslib.exceptions import ActivityFailed, InterruptExecution

from resilience.safety import undo_journal
from resilience.safety.refusals import broker_quorum_refusal

__all__ = ["start_broker_nodes", "stop_broker_nodes"]
ROLE_TAG = "harmonyflow:role"
ROLE = "rabbitmq"


def broker_instances(
    names: Sequence[str] = (),
    states: Sequence[str] = ("running",),
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The broker instances (Name tag → instance id) in one of `states`; all brokers when
    `names` is empty."""
    filters = [
        {"Name": f"tag:{ROLE_TAG}", "Values": [ROLE]},
        {"Name": "instance-state-name", "Values": list(states)},
    ]
    if names:
        filters.append({"Name": "tag:Name", "Values": list(names)})
    answer = aws_client("ec2", configuration, secrets).describe_instances(Filters=filters)
    found: dict[str, str] = {}
    for reservation in answer["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            found[tags.get("Name", instance["InstanceId"])] = instance["InstanceId"]
    return dict(sorted(found.items()))


def stop_broker_nodes(
    names: Sequence[str] = (),
    keep_running: int = 0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop the EC2 instances of the named RabbitMQ nodes (`["rabbitmq-1"]`), or of every
    node when `names` is empty: the whole broker cluster goes down.

    Fails when a named node is not a running broker, so a typo never passes as a
    harmless experiment. `keep_running` is the blast radius: when the stop would leave
    fewer brokers running (a node loss keeps the quorum, 2), nothing is stopped and the
    run is interrupted. The start is journaled before the stop; the rollback is
    `start_broker_nodes` with the same names.
    """
    running = broker_instances(names, configuration=configuration, secrets=secrets)
    missing = sorted(set(names) - set(running))
    if missing or not running:
        raise ActivityFailed(
            f"no running broker instance named {', '.join(missing or ['(any)'])}"
            f" (tag {ROLE_TAG}={ROLE})"
        )
    every = broker_instances(configuration=configuration, secrets=secrets)
    refusal = broker_quorum_refusal(list(every), list(running), int(keep_running))
    if refusal is not None:
        raise InterruptExecution(f"{refusal.message} (keep_running)")
    ids = list(running.values())
    undo_journal.record("start-instances", {"instance_ids": ids, "brokers": sorted(running)})
    answer = aws_client("ec2", configuration, secrets).stop_instances(InstanceIds=ids)
    return {
        "stopped": sorted(running),
        "states": {s["InstanceId"]: s["CurrentState"]["Name"] for s in answer["StoppingInstances"]},
    }


def start_broker_nodes(
    names: Sequence[str] = (),
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start the stopped broker nodes (the named ones, or all): the rollback of
    `stop_broker_nodes`. Safe to run twice; marks the matching journal entries done."""
    stopped = broker_instances(
        names, ("stopped", "stopping"), configuration=configuration, secrets=secrets
    )
    if stopped:
        aws_client("ec2", configuration, secrets).start_instances(
            InstanceIds=list(stopped.values())
        )
    for undo in undo_journal.pending(undo_journal.read()):
        brokers = undo.target.get("brokers")
        if undo.kind == "start-instances" and brokers and (not names or set(brokers) <= set(names)):
            undo_journal.mark_done(undo.id)
    return {"started": sorted(stopped)}
