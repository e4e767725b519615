"""AWS FIS experiments run from Chaos Toolkit, with their stop written down first.

The "AZ Availability: Power Interruption" scenario is an AWS FIS experiment
template (`experiments/fis/az-power-interruption.json`); these actions make it
part of a Chaos Toolkit run: the template is created once per content (or found
again by its tag), pointed at the zone and durations the run asks for, the
experiment's stop is journaled before StartExperiment (found again by the tag
the experiment is started with, as its id is only known once it started), and
the wait for its end is bounded. StopExperiment, which undoes what the actions
still do (instances stopped are started), is the rollback and what `resilience
recover` runs. Only boto3 (chaostoolkit-aws's client): on AWS it is AWS FIS, on
the sandbox its endpoint's emulation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosaws import aws_client
from chaoslib.exceptions import ActivityFailed

from resilience.chaos.blast_radius import enforce_budget
from resilience.chaos.waiting import seconds_until
from resilience.paths import project_file
from resilience.safety import undo_journal

__all__ = ["run_fis_experiment", "stop_fis_experiments"]
TEMPLATE_TAG = "harmonyflow:template"
UNDO_TAG = "harmonyflow:undo"
TERMINAL = ("completed", "stopped", "failed", "cancelled")
ZONE_FILTERS = ("Placement.AvailabilityZone", "AvailabilityZone")
DURATION_PARAMETERS = ("duration", "startInstancesAfterDuration")
NETWORK_ACTION = "aws:network:disrupt-connectivity"
POLL_SECONDS = 2.0


def for_zone(
    template: Mapping[str, Any],
    zone: str,
    duration: str | None,
    network_duration: str | None = None,
) -> dict[str, Any]:
    """The template aimed at `zone`: its zone filters and `availabilityZoneIdentifier`s say
    `zone`; with `duration` (ISO 8601, `PT2M`), the power outage's durations too
    (`startInstancesAfterDuration` and the other actions' `duration`: the scenario's 30
    minutes are a lot for a test). The network disruption keeps the template's duration
    (the scenario's own 2 minutes) unless `network_duration` says otherwise."""
    aimed = copy.deepcopy(dict(template))
    for target in (aimed.get("targets") or {}).values():
        for selector in target.get("filters") or ():
            if selector.get("path") in ZONE_FILTERS:
                selector["values"] = [zone]
        if "availabilityZoneIdentifier" in (target.get("parameters") or {}):
            target["parameters"]["availabilityZoneIdentifier"] = zone
    for action in (aimed.get("actions") or {}).values():
        parameters = action.get("parameters") or {}
        if "availabilityZoneIdentifier" in parameters:
            parameters["availabilityZoneIdentifier"] = zone
        action_id = action.get("actionId")
        wanted = network_duration if action_id == NETWORK_ACTION else duration
        if wanted is not None and action_id != "aws:fis:wait":
            for name in DURATION_PARAMETERS:
                if name in parameters:
                    parameters[name] = wanted
    return aimed


def template_key(name: str, template: Mapping[str, Any]) -> str:
    """The tag a template is found again by: its name and a digest of its content, so an
    edited template (or another zone) gets a template of its own.

    >>> template_key("az-power", {"actions": {}}) == template_key("az-power", {"actions": {}})
    True
    """
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def ensure_template(fis: Any, name: str, template: Mapping[str, Any]) -> str:
    """The id of the template with this content, created when there is none yet."""
    key = template_key(name, template)
    pages = fis.get_paginator("list_experiment_templates").paginate()
    for page in pages:
        for summary in page["experimentTemplates"]:
            if (summary.get("tags") or {}).get(TEMPLATE_TAG) == key:
                return str(summary["id"])
    body = {k: v for k, v in template.items() if k != "tags"}
    answer = fis.create_experiment_template(
        **body, tags={**(template.get("tags") or {}), TEMPLATE_TAG: key}
    )
    return str(answer["experimentTemplate"]["id"])


def run_fis_experiment(
    template_file: str,
    zone: str,
    duration: str | None = None,
    timeout: float = 900.0,
    network_duration: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the AWS FIS experiment template in `template_file` (JSON, as `aws fis
    create-experiment-template --cli-input-json` takes it) against `zone`, and wait for
    it to end (at most `timeout` seconds).

    The template's zone filters and `availabilityZoneIdentifier` are set to `zone`;
    `duration` (ISO 8601, such as `PT2M`) replaces the power outage's durations, and
    `network_duration` the network disruption's (by default it keeps the template's:
    the scenario's 2 minutes). Before
    StartExperiment, its stop is written to the recovery journal (the rollback
    `stop_fis_experiments` or `resilience recover` runs it). Fails when the experiment
    ends `failed` or `stopped` (its state's reason says why, for instance an action the
    sandbox does not emulate), or is still running after `timeout`. Returns the
    experiment's id, final state, and each action's state.
    """
    scenario = json.loads(template_path(template_file).read_text(encoding="utf-8"))
    template = for_zone(scenario, zone, duration, network_duration)
    enforce_budget_for_zone(zone, configuration, secrets)
    fis = aws_client("fis", configuration, secrets)
    template_id = ensure_template(fis, Path(template_file).stem, template)
    tag = uuid.uuid4().hex[:12]
    undo_id = undo_journal.record(
        "stop-fis-experiment", {"template_id": template_id, "zone": zone, "tag": tag}
    )
    experiment = fis.start_experiment(
        experimentTemplateId=template_id, clientToken=tag, tags={UNDO_TAG: tag}
    )["experiment"]
    experiment_id = str(experiment["id"])
    final: dict[str, Any] = {}

    def ended() -> tuple[bool, str]:
        final.update(fis.get_experiment(id=experiment_id)["experiment"])
        state = final["state"]
        return state["status"] in TERMINAL, f"{state['status']}: {state.get('reason', '')}"

    seconds = seconds_until(ended, timeout, f"FIS experiment {experiment_id} ended", POLL_SECONDS)
    undo_journal.mark_done(undo_id)
    summary = {
        "experiment_id": experiment_id,
        "template_id": template_id,
        "state": final["state"],
        "actions": {n: action_summary(a) for n, a in (final.get("actions") or {}).items()},
        "seconds": seconds,
    }
    if final["state"]["status"] != "completed":
        raise ActivityFailed(
            f"FIS experiment {experiment_id} {final['state']['status']}:"
            f" {final['state'].get('reason', '')}"
        )
    return summary


def template_path(template_file: str) -> Path:
    """The template file: as given when it exists (absolute, or relative to the working
    directory), else relative to this project (the experiments name
    `experiments/fis/...`, and a game day runs them from its run directory)."""
    return project_file(template_file)


def action_summary(action: Mapping[str, Any]) -> dict[str, Any]:
    """One action of a GetExperiment answer as the journal keeps it: its state, its id,
    and when it ran in Unix seconds (None before it started or ended), for the report's
    bands.

    >>> from datetime import datetime, UTC
    >>> action_summary({"actionId": "aws:fis:wait", "state": {"status": "completed"},
    ...                 "startTime": datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC)})
    {'status': 'completed', 'action_id': 'aws:fis:wait', 'start': 10.0, 'end': None}
    """

    def unix(moment: Any) -> float | None:
        return moment.timestamp() if hasattr(moment, "timestamp") else None

    return {
        **(action.get("state") or {}),
        "action_id": action.get("actionId"),
        "start": unix(action.get("startTime")),
        "end": unix(action.get("endTime")),
    }


def enforce_budget_for_zone(
    zone: str, configuration: dict[str, Any] | None, secrets: dict[str, Any] | None
) -> None:
    """The pods on the zone's nodes against the declared `max_disrupted_pods` (none: no
    check, and no Kubernetes call)."""
    if (configuration or {}).get("max_disrupted_pods") is None:
        return
    from resilience.chaos.kube import core, nodes_in_zone  # noqa: PLC0415 - only with a budget
    from resilience.chaos.nodes import pods_on  # noqa: PLC0415

    api = core(secrets)
    nodes = [n.metadata.name for n in nodes_in_zone(api, zone)]
    namespace = (configuration or {}).get("namespace")
    enforce_budget(
        configuration, len(pods_on(api, nodes, namespace)), f"FIS power interruption of {zone}"
    )


def stop_fis_experiments(
    timeout: float = 120.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop every FIS experiment this suite started that is still running (those with a
    pending stop in the recovery journal), and wait (at most `timeout` seconds) until
    each is stopped: FIS undoes what its actions still do, such as starting the
    instances it stopped. The rollback of `run_fis_experiment`; safe to run twice."""
    fis = aws_client("fis", configuration, secrets)
    stopped = []
    for undo in undo_journal.pending(undo_journal.read()):
        if undo.kind != "stop-fis-experiment":
            continue
        stopped.extend(stop_journaled(fis, undo.target, timeout))
        undo_journal.mark_done(undo.id)
    return {"stopped": stopped}


def stop_journaled(fis: Any, target: Mapping[str, Any], timeout: float) -> list[str]:
    """Stop the experiments of the journaled template started with the journaled tag (one,
    unless StartExperiment was retried); their ids."""
    running = []
    pages = fis.get_paginator("list_experiments").paginate(
        experimentTemplateId=target["template_id"]
    )
    for page in pages:
        for summary in page["experiments"]:
            tagged = (summary.get("tags") or {}).get(UNDO_TAG) == target["tag"]
            if tagged and summary["state"]["status"] not in TERMINAL:
                running.append(str(summary["id"]))
    for experiment_id in running:
        fis.stop_experiment(id=experiment_id)

    def all_ended() -> tuple[bool, str]:
        states = {i: fis.get_experiment(id=i)["experiment"]["state"]["status"] for i in running}
        return all(s in TERMINAL for s in states.values()), str(states)

    seconds_until(all_ended, timeout, "FIS experiments stopped", POLL_SECONDS)
    return running
