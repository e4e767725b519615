"""`resilience certify --profile NAME`: run a profile's load, judge its SLOs, issue a certificate.

The target is `--host URL`, or by default the running sandbox (its ingress URL and
kubeconfig). The certificate (`certificate.json` + `certificate.html`) goes into
`<reports-dir>/certify-<profile>-<UTC time>/` with Locust's CSV, HTML and log, the
timeline and the chaos marks. One line per SLO is printed; exit 0 when all pass,
1 when any fails (its line names the SLO and the observed value), 2 on bad input.

`--processes N` runs the load in Locust's own multi-process mode (`locust --processes
N`: a master and N forked workers on this machine; the master merges their stats and
the timeline plugin their records), instead of the profile's `processes`/`workers`.

A profile with `capacity:` (resilience/load/capacity.py) is run as the ramp and hold
its figures give; the certificate states the target and what the hold achieved, and
fails naming each figure that fell short.

`--on-cluster [--workers N] [--load-namespace NS]` runs the load from pods instead:
deploy/locust's master and N workers (default: the profile's workers or processes,
at least 1) in `harmonyflow-load`, created through the kubeconfig's API and deleted
after the run, also on Ctrl-C or SIGTERM (resilience/load/cluster_run.py). The pods
target the same URL a local run would, so the certificates compare.

`--chaos-timeline FILE` lets another process (a Chaos Toolkit activity, a test)
mark fault windows while the load runs: it appends JSON lines
`{"t": <unix time>, "fault": "pod-kill", "phase": "start" | "end"}`
(`resilience.load.runner.append_mark`).
"""

from __future__ import annotations

import argparse
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import config
from kubernetes.client import ApiClient
from kubernetes.config.config_exception import ConfigException

from resilience.errors import InvalidInputError
from resilience.load.capacity import (
    achieved_load,
    certified_figures,
    hold_span,
    plan_capacity,
    shortfalls,
)
from resilience.load.certificate import (
    build_certificate,
    chart_seconds,
    fault_spans,
    write_certificate,
)
from resilience.load.cluster import LOAD_NAMESPACE
from resilience.load.cluster_run import ClusterLoadRun, sigterm_interrupts
from resilience.load.environment import describe_cluster, tool_versions
from resilience.load.profile import Profile, load_profile, resolve_profile
from resilience.load.runner import LoadPlan, LoadResult, LoadRun, LoadRunBase, read_marks
from resilience.paths import PROJECT_ROOT as REPO_ROOT
from resilience.preflight import review
from resilience.preflight.needs import on_cluster_load_needs

LOADTESTS = REPO_ROOT / "loadtests"
PROFILES = LOADTESTS / "profiles"
NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"
EXIT_FAILED = 1


@dataclass(frozen=True)
class Target:
    host: str
    source: str  # "--host" or "sandbox"
    kubeconfig: Path | None
    context: str | None


def add_command(commands: Any) -> None:
    """Add `certify` to the `resilience` sub-command parser."""
    certify = commands.add_parser(
        "certify", help="run a load certification profile and write a certificate"
    )
    certify.add_argument("--profile", required=True, help="a name in loadtests/profiles/ or a file")
    certify.add_argument("--host", help="base URL of the service (default: the running sandbox)")
    certify.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG or the sandbox's")
    certify.add_argument("--kube-context", help="context of the kubeconfig (default: current)")
    certify.add_argument("--namespace", default=NAMESPACE)
    certify.add_argument("--deployment", default=DEPLOYMENT)
    certify.add_argument("--reports-dir", type=Path, default=Path("reports"))
    certify.add_argument("--profiles-dir", type=Path, default=PROFILES)
    certify.add_argument("--run-time", type=float, help="override the profile's run time (s)")
    certify.add_argument(
        "--processes",
        type=int,
        help="Locust processes on this machine (locust --processes N); default: the profile's",
    )
    certify.add_argument(
        "--on-cluster",
        action="store_true",
        help="run Locust as deploy/locust's master and workers in pods (through the kubeconfig)",
    )
    certify.add_argument(
        "--workers", type=int, help="with --on-cluster: worker pods (default: the profile's)"
    )
    certify.add_argument(
        "--load-namespace", default=LOAD_NAMESPACE, help="with --on-cluster: where the pods run"
    )
    certify.add_argument("--chaos-timeline", type=Path, help="fault marks file (JSON lines)")
    certify.add_argument("--sandbox-dir", help="the sandbox's state dir (default as `sandbox`)")
    certify.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    profile = load_profile(resolve_profile(arguments.profile, arguments.profiles_dir))
    if arguments.run_time is not None and not arguments.run_time > 0:
        raise InvalidInputError(f"--run-time must be positive, got {arguments.run_time}")
    if arguments.processes is not None and arguments.processes < 1:
        raise InvalidInputError(f"--processes must be at least 1, got {arguments.processes}")
    check_on_cluster(arguments.on_cluster, arguments.workers, arguments.processes)
    if arguments.chaos_timeline is not None:
        read_marks(arguments.chaos_timeline)  # a bad file is bad input, found before the load
    target = resolve_target(arguments)
    out_dir = arguments.reports_dir / f"certify-{profile.name}-{_stamp()}"
    plan = plan_for(profile, target.host, out_dir, arguments.run_time, arguments.processes)
    print(f"certify: profile {profile.name} against {target.host} ({target.source}), {out_dir}")
    load: LoadRunBase
    if arguments.on_cluster:
        workers = arguments.workers or default_workers(profile)
        api = cluster_api(target)
        needs = on_cluster_load_needs(arguments.load_namespace)
        review.check(api, needs, lambda line: print(f"certify: preflight: {line}"))
        load = ClusterLoadRun(
            plan,
            api,
            workers,
            arguments.load_namespace,
            chaos_file=arguments.chaos_timeline,
        )
        print(f"certify: on the cluster, {workers} worker pods in {arguments.load_namespace}")
    else:
        load = LoadRun(plan, chaos_file=arguments.chaos_timeline)
    with sigterm_interrupts(), load:
        result = load.wait()
    environment = {
        "cluster": describe_cluster(
            target.kubeconfig, target.context, arguments.namespace, arguments.deployment
        ),
        "tools": tool_versions(),
    }
    verdicts = result.evaluate(profile.slos)
    problems = run_problems(result, load.deadline())
    capacity = None
    if profile.capacity is not None:
        achieved = achieved_load(result.timeline, *hold_span(profile.capacity, result.span))
        capacity = certified_figures(profile.capacity, plan_capacity(profile.capacity), achieved)
        problems += shortfalls(profile.capacity, achieved)
    certificate = build_certificate(
        profile, _target_json(target), result, verdicts, environment, problems, capacity
    )
    json_path, html_path = write_certificate(
        out_dir, certificate, chart_seconds(result), fault_spans(result)
    )
    for verdict in verdicts:
        print(verdict.line())
    for problem in problems:
        print(f"FAIL run: {problem}")
    print(f"certify: {certificate['verdict']}; certificate {json_path} and {html_path}")
    return 0 if certificate["verdict"] == "PASS" else EXIT_FAILED


def check_on_cluster(on_cluster: bool, workers: int | None, processes: int | None) -> None:
    """The flags that go with `--on-cluster`, and those that do not (exit 2)."""
    if workers is not None and not on_cluster:
        raise InvalidInputError("--workers needs --on-cluster (worker pods)")
    if workers is not None and workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {workers}")
    if on_cluster and processes is not None:
        raise InvalidInputError("--on-cluster runs worker pods: use --workers, not --processes")


def default_workers(profile: Profile) -> int:
    """Worker pods for a profile: as many as its local workers or processes, at least 1."""
    return max(profile.load.workers, profile.load.processes, 1)


def cluster_api(target: Target) -> ApiClient:
    """A client for the target's kubeconfig: where the load pods are created."""
    if target.kubeconfig is None:
        raise InvalidInputError(
            "--on-cluster needs a kubeconfig: pass --kubeconfig or set KUBECONFIG"
        )
    try:
        api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(target.kubeconfig), context=target.context
        )
    except (ConfigException, OSError, ValueError) as error:
        raise InvalidInputError(f"kubeconfig {target.kubeconfig}: {error}") from None
    return api


def plan_for(
    profile: Profile,
    host: str,
    out_dir: Path,
    run_time: float | None,
    processes: int | None = None,
) -> LoadPlan:
    """The Locust run a profile asks for (paths under loadtests/, shape params as env).

    With `capacity:`, its plan replaces users, spawn rate, run time and shape: Locust
    spawns the users at the plan's rate (the ramp) and holds them to the run's end.
    `processes` (from `--processes`) replaces the profile's processes and workers."""
    load = profile.load
    env = dict(load.env)
    env.update({f"HF_SHAPE_{k.upper()}": f"{v:g}" for k, v in load.shape_params.items()})
    users, spawn_rate, shape, own_run_time = load.users, load.spawn_rate, load.shape, load.run_time
    if profile.capacity is not None:
        capacity = plan_capacity(profile.capacity)
        env.update(capacity.env())
        users, spawn_rate, shape = capacity.users, capacity.spawn_rate, None
        own_run_time = capacity.run_time
    return LoadPlan(
        host=host,
        locustfiles=tuple(LOADTESTS / name for name in load.locustfiles),
        out_dir=out_dir.resolve(),
        users=users,
        spawn_rate=spawn_rate,
        run_time=run_time or own_run_time,
        shape=shape,
        processes=processes if processes is not None else load.processes,
        workers=0 if processes is not None else load.workers,
        env=env,
        user_classes=load.user_classes,
    )


def resolve_target(arguments: argparse.Namespace) -> Target:
    """--host wins; otherwise the running sandbox; otherwise a one-line error (exit 2)."""
    kubeconfig: Path | None = arguments.kubeconfig
    if arguments.host:
        check_host(arguments.host)
        if kubeconfig is None and os.environ.get("KUBECONFIG"):
            kubeconfig = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        return Target(arguments.host.rstrip("/"), "--host", kubeconfig, arguments.kube_context)
    from resilience import sandbox_cli  # noqa: PLC0415 - only this path needs the sandbox

    found = sandbox_cli.running_sandbox(arguments.sandbox_dir)
    if found is None:
        raise InvalidInputError(
            "no target: the sandbox is not running and no --host was given; "
            "run `resilience sandbox up` or pass --host URL"
        )
    ingress, sandbox_kubeconfig = found
    return Target(ingress, "sandbox", kubeconfig or sandbox_kubeconfig, arguments.kube_context)


def check_host(host: str) -> None:
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"--host: expected a URL like http://127.0.0.1:8080, got {host!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInputError(f"--host: expected a base URL without a path, got {host!r}")


def run_problems(result: LoadResult, deadline: float) -> list[str]:
    """Failures of the run itself, which no SLO would name; `deadline` is the run's bound
    (`LoadRunBase.deadline`: a local run's or an on-cluster one's)."""
    problems = []
    recorded = sum(r.ok + r.failed for r in result.timeline.records)
    if recorded == 0:
        problems.append(
            f"no request was recorded (locust exit code {result.returncode}; see {result.log})"
        )
    if result.returncode not in (0, None) and not result.stopped_by_runner:
        problems.append(f"locust exited with code {result.returncode} (see {result.log})")
    if result.stopped_by_runner:
        problems.append(
            f"locust did not finish within {deadline:.0f}s and was stopped (see {result.log})"
        )
    return problems


def _target_json(target: Target) -> dict[str, Any]:
    return {
        "host": target.host,
        "source": target.source,
        "kubeconfig": str(target.kubeconfig) if target.kubeconfig else None,
        "context": target.context,
    }


def _stamp() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"
