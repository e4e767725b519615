"""Locust on the cluster, decided: deploy/locust's objects turned into one run's objects.

`resilience certify --on-cluster` and the game day's `--load-on-cluster` run the
profile's load from pods (`resilience.load.cluster_run` does the I/O). What they
create is deploy/locust as users apply it, changed only where a run needs it:

- the `locust-settings` ConfigMap holds the plan's environment: the locustfiles at
  their mount (`LOCUST_LOCUSTFILE`, which the workers read), the target
  (`LOCUST_HOST`) and the plan's `HF_*` variables (wait times, shape parameters);
- the master's args are a local run's (`runner.run_options`: users, spawn rate and
  run time, the timeline, CSV with full history, `--exit-code-on-error 0`,
  `--stop-timeout`) with the pod's paths, plus `--master --autostart
  --expect-workers N`. `--autostart`, not `--headless`: a headless master exits at
  the end of its run, and its Deployment would restart it into a second run. An
  autostarted one stops the test at `--run-time` (or when the shape ends) and stays
  up, logging `AUTOSTART_DONE` (locust/main.py `stop_and_optionally_quit`, no
  `--autoquit`), which is how the runner knows the run is over;
- the workers' Deployment has N replicas;
- every object, and every pod of both Deployments, carries `RUN_LABEL: <run id>`, so
  that the run's objects are found, and deleted, by one label selector.

Pure, so the objects are table-tested; `cluster_objects` takes the rendered objects
(`resilience.manifests.render(deploy/locust, files_outside=True)`) as plain data.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.errors import InvalidInputError, ManifestError
from resilience.load.runner import TIMELINE, LoadPlan, locust_files, run_options

LOAD_NAMESPACE = "harmonyflow-load"
RUN_LABEL = "harmonyflow.io/load-run"
MASTER = "locust-master"
WORKER = "locust-worker"
SETTINGS = "locust-settings"
CONTAINER = "locust"
POD_OUT = "/tmp"  # the master's results emptyDir (deploy/locust/master.yaml)
POD_FILES = "/mnt/locust"  # where the locustfiles ConfigMap is mounted
# Locust's own files under `--csv <POD_OUT>/locust` (stats.py StatsCSVFileWriter), and
# the timeline; what is collected from the master when its run is over.
RESULT_FILES = (
    TIMELINE,
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
)
# Logged by an autostarted master once its run stopped (the run time or the shape is
# over, the workers were told to stop and the test_stop event has fired): locust/main.py
# `stop_and_optionally_quit`, Locust 2.x.
AUTOSTART_DONE = "--autoquit not specified, leaving web ui running indefinitely"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

KubeObject = Mapping[str, Any]


@dataclass(frozen=True)
class ClusterLoad:
    """One on-cluster run: its namespace and the objects to create, in order."""

    namespace: str
    run_id: str
    namespace_object: KubeObject
    objects: tuple[KubeObject, ...]

    @property
    def selector(self) -> str:
        """The label selector of everything this run created."""
        return f"{RUN_LABEL}={self.run_id}"

    @property
    def master_selector(self) -> str:
        return f"{self.selector},role=master"

    @property
    def worker_selector(self) -> str:
        return f"{self.selector},role=worker"


def pod_locustfiles(plan: LoadPlan) -> list[str]:
    """The plan's locustfiles (and shape) where the pods mount them.

    >>> from pathlib import Path
    >>> plan = LoadPlan("http://x", (Path("/l/sessions_rest.py"),), Path("/o"), shape="step")
    >>> pod_locustfiles(plan)
    ['/mnt/locust/sessions_rest.py', '/mnt/locust/shape_step.py']
    """
    return [f"{POD_FILES}/{path.name}" for path in locust_files(plan)]


def settings_data(plan: LoadPlan) -> dict[str, str]:
    """The `locust-settings` ConfigMap's data: every pod's environment for this plan."""
    return {
        **dict(plan.env),
        "LOCUST_LOCUSTFILE": ",".join(pod_locustfiles(plan)),
        "LOCUST_HOST": plan.host,
    }


def master_args(plan: LoadPlan, workers: int) -> list[str]:
    """The master container's args: a local run's options with the pod's paths, as an
    autostarted master of `workers` workers (see the module docstring)."""
    options = run_options(plan, POD_OUT, pod_locustfiles(plan))
    options += ["--master", "--autostart", "--expect-workers", str(workers)]
    return options + list(plan.user_classes)


def cluster_objects(
    rendered: Sequence[KubeObject],
    plan: LoadPlan,
    workers: int,
    run_id: str,
    namespace: str = LOAD_NAMESPACE,
) -> ClusterLoad:
    """deploy/locust's rendered objects as one run's (see the module docstring).

    `InvalidInputError` for a bad worker count or run id; `ManifestError` when the
    rendering lacks an object the run changes."""
    if workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {workers}")
    if not _LABEL_VALUE.match(run_id):
        raise InvalidInputError(f"run id {run_id!r} is not a label value")
    by_kind_name = {(o["kind"], _base_name(o)): o for o in rendered}
    wanted = [
        ("Namespace", LOAD_NAMESPACE),
        ("ConfigMap", SETTINGS),
        ("Deployment", MASTER),
        ("Deployment", WORKER),
        ("Service", MASTER),
    ]
    missing = [f"{kind}/{name}" for kind, name in wanted if (kind, name) not in by_kind_name]
    if missing:
        raise ManifestError(f"deploy/locust renders no {', '.join(missing)}")
    namespace_object = copy.deepcopy(dict(by_kind_name[("Namespace", LOAD_NAMESPACE)]))
    namespace_object["metadata"]["name"] = namespace
    objects = []
    for obj in rendered:
        if obj["kind"] == "Namespace":
            continue
        changed = _in_run(obj, run_id, namespace)
        key = (changed["kind"], _base_name(changed))
        if key == ("ConfigMap", SETTINGS):
            changed["data"] = settings_data(plan)
        elif key == ("Deployment", MASTER):
            changed["spec"]["replicas"] = 1
            _container(changed)["args"] = master_args(plan, workers)
        elif key == ("Deployment", WORKER):
            changed["spec"]["replicas"] = workers
            container = _container(changed)
            container["args"] = [*container.get("args", []), *plan.user_classes]
        objects.append(changed)
    return ClusterLoad(namespace, run_id, namespace_object, tuple(objects))


def master_finished(log: str) -> bool:
    """Whether an autostarted master's log says its run is over.

    >>> master_finished("... Shape test completed, stopping test\\n... " + AUTOSTART_DONE)
    True
    >>> master_finished("Run time limit set to 30 seconds")
    False
    """
    return AUTOSTART_DONE in log


def _in_run(obj: KubeObject, run_id: str, namespace: str) -> dict[str, Any]:
    changed = copy.deepcopy(dict(obj))
    metadata = changed["metadata"]
    metadata["namespace"] = namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), RUN_LABEL: run_id}
    template = (changed.get("spec") or {}).get("template")
    if template is not None:
        template_metadata = template.setdefault("metadata", {})
        template_metadata["labels"] = {**(template_metadata.get("labels") or {}), RUN_LABEL: run_id}
    return changed


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container["name"] == CONTAINER:
            found: dict[str, Any] = container
            return found
    raise ManifestError(f"deploy/locust: {deployment['metadata']['name']} has no {CONTAINER!r}")


def _base_name(obj: KubeObject) -> str:
    """The name without kustomize's hash suffix for generated ConfigMaps."""
    name = str(obj["metadata"]["name"])
    if obj["kind"] == "ConfigMap" and name.rsplit("-", 1)[0] in (SETTINGS, "locustfiles"):
        return name.rsplit("-", 1)[0]
    return name
