"""Replaying the recovery journal: what `resilience recover` does after a `kill -9`.

Each pending undo is applied through the same APIs the experiments use, then
marked done, so running `recover` twice is harmless. A failure is reported and
the next undo still runs. An undo that must wait (`Later`: a load whose run is
still going stops itself) stays pending and is reported, not failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chaosaws import aws_client
from chaoslib.exceptions import ActivityFailed
from kubernetes.client.exceptions import ApiException

from resilience import processes as procs
from resilience.chaos.chaosmesh import custom, delete_journaled
from resilience.chaos.deployments import delete_canary
from resilience.chaos.fis import stop_journaled
from resilience.chaos.kube import REQUEST_TIMEOUT, api_client, apps, core
from resilience.errors import ResilienceError
from resilience.load.cluster_run import TEARDOWN_TIMEOUT, delete_run
from resilience.load.runner import KILL_AFTER
from resilience.safety import undo_journal


class Later(Exception):
    """Raised by an undo that must not run yet; its message says why."""


FIS_STOP_TIMEOUT_SECONDS = 120.0
CHAOS_DELETE_TIMEOUT_SECONDS = 60.0


def _uncordon(target: dict[str, Any]) -> str:
    api = core()
    for node in target.get("nodes") or []:
        api.patch_node(node, {"spec": {"unschedulable": None}}, _request_timeout=REQUEST_TIMEOUT)
    return f"uncordoned {', '.join(target.get('nodes') or []) or 'nothing'}"


def _start_instances(target: dict[str, Any]) -> str:
    ids = list(target.get("instance_ids") or [])
    if ids:
        aws_client("ec2", {}, None).start_instances(InstanceIds=ids)
    return f"started {', '.join(ids) or 'nothing'}"


def _restore_image(target: dict[str, Any]) -> str:
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": target["container"], "image": target["image"]}]}
            }
        }
    }
    apps().patch_namespaced_deployment(
        target["deployment"], target["namespace"], patch, _request_timeout=REQUEST_TIMEOUT
    )
    return f"deployment {target['namespace']}/{target['deployment']} back on {target['image']}"


def _delete_canary(target: dict[str, Any]) -> str:
    delete_canary(target["namespace"], target["deployment"])
    return f"canary {target['namespace']}/{target['deployment']} deleted"


def _start_db(target: dict[str, Any]) -> str:
    rds = aws_client("rds", {}, None)
    identifier = target["db_instance_identifier"]
    [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    if db["DBInstanceStatus"] == "stopped":
        rds.start_db_instance(DBInstanceIdentifier=identifier)
    return f"DB instance {identifier} started"


def _scale(target: dict[str, Any]) -> str:
    apps().patch_namespaced_deployment_scale(
        target["deployment"],
        target["namespace"],
        {"spec": {"replicas": int(target["replicas"])}},
        _request_timeout=REQUEST_TIMEOUT,
    )
    return f"deployment {target['namespace']}/{target['deployment']} scaled to {target['replicas']}"


def _stop_load(target: dict[str, Any]) -> str:
    """Stop a Locust process group left by a killed run, only if it is still the one
    that run started (pid, start time, boot) and that run is gone."""
    started = procs.StartedProcess.from_json(target)
    what = f"Locust pid {started.pid} ({started.short()})"
    fate = procs.fate(started, procs.look(started))
    if fate == "gone":
        return f"{what}: already gone"
    if fate == "owned":
        raise Later(f"{what}: left running, its run (pid {started.owner_pid}) is still going")
    if not procs.stop_group(started, KILL_AFTER):
        raise OSError(f"{what}: still running after SIGTERM and SIGKILL")
    return f"stopped {what}"


def _delete_load(target: dict[str, Any]) -> str:
    """Delete an on-cluster Locust run's objects (deploy/locust, labelled with its run id)."""
    namespace, run_id = target["namespace"], target["run_id"]
    deleted = delete_run(api_client(), namespace, run_id, TEARDOWN_TIMEOUT)
    return f"load run {namespace}/{run_id}: deleted {', '.join(deleted) or 'nothing (gone)'}"


def _stop_fis_experiment(target: dict[str, Any]) -> str:
    stopped = stop_journaled(aws_client("fis", {}, None), target, FIS_STOP_TIMEOUT_SECONDS)
    return f"FIS experiments stopped: {', '.join(stopped) or 'none was running'}"


def _delete_chaos_mesh_object(target: dict[str, Any]) -> str:
    return delete_journaled(custom(), target, CHAOS_DELETE_TIMEOUT_SECONDS)


UNDOERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "uncordon": _uncordon,
    "start-instances": _start_instances,
    "restore-image": _restore_image,
    "delete-canary": _delete_canary,
    "start-db": _start_db,
    "scale": _scale,
    "stop-load": _stop_load,
    "delete-load": _delete_load,
    "stop-fis-experiment": _stop_fis_experiment,
    "delete-chaos-mesh-object": _delete_chaos_mesh_object,
}


def recover(path: Path | None = None) -> list[str]:
    """Apply every pending undo; the lines say what was done. Raises if any failed."""
    lines, failed = [], []
    pending = undo_journal.pending(undo_journal.read(path))
    if not pending:
        return ["nothing to recover"]
    for undo in pending:
        try:
            lines.append(UNDOERS[undo.kind](undo.target))
        except Later as later:
            lines.append(str(later))
            continue
        except (
            ActivityFailed,  # a bounded wait ran out
            ApiException,
            BotoCoreError,
            ClientError,
            KeyError,
            ValueError,
            OSError,
        ) as error:
            failed.append(f"{undo.kind} {undo.target}: {error}")
            continue
        undo_journal.mark_done(undo.id, path)
    if failed:
        raise ResilienceError("recover: " + "; ".join(failed))
    return lines
