"""Power loss of a whole availability zone through EC2, and its undo.

chaostoolkit-aws can stop instances by id or filter, but never writes down what it
stopped, so an interrupted experiment leaves a zone dark. These actions find the
cluster's instances in one zone (by `availability-zone`, state and the EKS cluster
tag), record their start in the recovery journal, then stop them.
"""

from __future__ import annotations

from typing import Any

from chaosaws import aws_client
from chaoslib.exceptions import ActivityFailed

from resilience.chaos.blast_radius import enforce_budget
from resilience.chaos.kube import core, nodes_in_zone
from resilience.chaos.nodes import pods_on
from resilience.safety import undo_journal

__all__ = ["start_zone_instances", "stop_zone_instances"]
CLUSTER_TAG = "eks:cluster-name"


def zone_instances(
    zone: str,
    cluster_name: str,
    states: tuple[str, ...] = ("running",),
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> list[str]:
    """Ids of the cluster's EC2 instances in `zone` whose state is one of `states`."""
    ec2 = aws_client("ec2", configuration, secrets)
    answer = ec2.describe_instances(
        Filters=[
            {"Name": "availability-zone", "Values": [zone]},
            {"Name": "instance-state-name", "Values": list(states)},
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]},
        ]
    )
    return sorted(i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"])


def stop_zone_instances(
    zone: str,
    cluster_name: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop every running instance of the cluster in `zone` (its nodes lose power).

    The start is written to the recovery journal first; the rollback is
    `start_zone_instances`. Fails when the zone has no running instance of the
    cluster, so a typo in the zone does not pass as a harmless experiment.
    """
    ids = zone_instances(zone, cluster_name, configuration=configuration, secrets=secrets)
    if not ids:
        raise ActivityFailed(f"no running instance of cluster {cluster_name} in zone {zone}")
    api = core(secrets)
    nodes = [n.metadata.name for n in nodes_in_zone(api, zone)]
    namespace = (configuration or {}).get("namespace")
    enforce_budget(configuration, len(pods_on(api, nodes, namespace)), f"power loss of zone {zone}")
    undo_journal.record("start-instances", {"instance_ids": ids, "zone": zone})
    ec2 = aws_client("ec2", configuration, secrets)
    answer = ec2.stop_instances(InstanceIds=ids)
    return {
        "zone": zone,
        "stopped": ids,
        "states": {s["InstanceId"]: s["CurrentState"]["Name"] for s in answer["StoppingInstances"]},
    }


def start_zone_instances(
    zone: str,
    cluster_name: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start the cluster's stopped instances in `zone` (the rollback of `stop_zone_instances`).

    Safe to run twice; marks the matching recovery-journal entries done.
    """
    ids = zone_instances(
        zone, cluster_name, ("stopped", "stopping"), configuration=configuration, secrets=secrets
    )
    if ids:
        aws_client("ec2", configuration, secrets).start_instances(InstanceIds=ids)
    for undo in undo_journal.pending(undo_journal.read()):
        if undo.kind == "start-instances" and undo.target.get("zone") == zone:
            undo_journal.mark_done(undo.id)
    return {"zone": zone, "started": ids}
