"""AWS FIS's AZ power interruption, live on the sandbox, aimed at the zone of the DB writer.

`resilience chaos run experiments/az-power-interruption.yaml` goes through the FIS
API. While it runs, a watcher records what a user would look for: the zone's nodes
NotReady, and the zone cut off in the pod network. Afterwards: the writer failed over
out of the zone, each FIS action lasted its time (the network its scenario's 2
minutes), and everything is back as it started.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client

from resilience.chaos.verdict import failures
from tests.aws.clients import boto
from tests.chaos.runs import EXPERIMENTS, journal_of
from tests.cli import resilience_command
from tests.live import LiveSandbox, all_whole, cluster_state
from tests.sandbox.cluster_harness import wait_for

pytestmark = [pytest.mark.usefixtures("servers_installed"), pytest.mark.slow]
ZONE_LABEL = "topology.kubernetes.io/zone"
NETWORK_SECONDS = 120.0  # the template's Pause-Network-Connectivity (the scenario's PT2M)


@dataclass
class Seen:
    nodes_not_ready: set[str] = field(default_factory=set)
    zone_cut: bool = False
    stop: threading.Event = field(default_factory=threading.Event)


def watch(live: LiveSandbox, zone: str, seen: Seen) -> None:
    core = client.CoreV1Api(live.api)
    while not seen.stop.wait(1.0):
        for node in core.list_node().items:
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
            if node.metadata.labels.get(ZONE_LABEL) == zone and not ready:
                seen.nodes_not_ready.add(node.metadata.name)
        rules = subprocess.run(
            ["nft", "list", "ruleset"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        seen.zone_cut |= f"zone {zone} cut off" in rules


def test_the_az_power_interruption_runs_through_fis_on_the_writers_zone(
    chaos_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    live = chaos_sandbox
    wait_for(lambda: all_whole(live), 120, "the deployment whole before the experiment")
    rds = boto(live.exports, "rds")
    [db] = rds.describe_db_instances()["DBInstances"]
    zone = str(db["AvailabilityZone"])
    zone_nodes = {
        n.metadata.name
        for n in client.CoreV1Api(live.api).list_node().items
        if n.metadata.labels.get(ZONE_LABEL) == zone
    }
    before = cluster_state(live)
    seen = Seen()
    watcher = threading.Thread(target=watch, args=(live, zone, seen), daemon=True)
    watcher.start()
    try:
        runner = resilience_command("chaos", "run", "--var", f"zone={zone}")
        journal_path = tmp_path / "journal.json"
        experiment = EXPERIMENTS / "az-power-interruption.yaml"
        journal = journal_of(
            live, tmp_path, [*runner, "--journal", str(journal_path), str(experiment)], journal_path
        )
    finally:
        seen.stop.set()
        watcher.join(15)
    reasons = failures(journal)
    assert reasons == [], "; ".join(reasons)
    [fis_run] = [
        e["output"]
        for e in journal["run"]
        if e["activity"]["provider"].get("func") == "run_fis_experiment"
    ]
    actions = fis_run["actions"]
    assert fis_run["state"]["status"] == "completed"
    network = actions["Pause-Network-Connectivity"]
    assert network["status"] == "completed"
    assert network["end"] - network["start"] == pytest.approx(NETWORK_SECONDS, abs=10)
    assert actions["Stop-Instances"]["status"] == "completed"
    assert actions["Reboot-RDS"]["status"] == "completed"
    assert seen.zone_cut, "the pod network never cut the zone off"
    assert seen.nodes_not_ready == zone_nodes, "every node of the zone lost power"
    [after] = rds.describe_db_instances()["DBInstances"]
    assert after["AvailabilityZone"] != zone, "the writer failed over out of the zone"
    events = rds.describe_events(SourceType="db-instance", Duration=60)["Events"]
    assert any("failover started" in e["Message"] for e in events), events
    wait_for(lambda: all_whole(live), 180, "the deployment whole after the experiment")
    wait_for(lambda: cluster_state(live) == before, 180, "the cluster as it started")
