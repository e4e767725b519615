"""The full `pytest -m resilience` on the sandbox: wall time, watch coverage, monitor CPU.

    flock /tmp/hf-sandbox.lock .venv/bin/python bench/suites_resilience.py [-m resilience]

1. Starts a sandbox (`resilience sandbox up`, timed: the first baseline).
2. Times pytest's collection of the same selection (the second baseline).
3. Runs `pytest suites -m resilience` against that sandbox through `--kube-context`
   (the path staging takes) with `--keep-timeline`, while this process keeps a
   second, independent watch on the service's pods (the raw Kubernetes client, not
   resilience.observe) and records every pod event with its resourceVersion. A small
   pytest plugin (this module, `-p bench.suites_resilience`) samples, every 0.1 s,
   the CPU time of the monitors' watcher threads (`observe-*`, per native thread id,
   with psutil) and of the whole pytest process.
4. Compares the independent watch with the monitors' exported timelines: every pod
   event the second watch saw while a test's monitors were running must be in that
   test's timeline (same pod, same resourceVersion); pod state transitions (phase,
   Ready, restarts, deletion) are counted apart.
5. Prints the figures and their ratios against the baselines; never asserts.

Targets: the run in 10 minutes or less on 2 cores (sandbox boot included), every
transition seen, and the monitors a small share of the CPU. The per-thread figure
misses what a watcher spends in the last 0.1 s of its life (a sampling bound).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 600.0
CPU_FILE_VARIABLE = "HF_BENCH_MONITOR_CPU_FILE"
SAMPLE_SECONDS = 0.1
CONTEXT = "harmonyflow-sandbox"
NAMESPACE = "harmonyflow"
POD_SELECTOR = "app=session-state-service"
PYTEST_TIMEOUT_SECONDS = 1800


# ---- the pytest plugin (runs inside the suite's process) ----


class _CpuSampler:
    """Cumulative CPU seconds of every `observe-*` thread, sampled until stopped."""

    def __init__(self) -> None:
        self.threads: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)
        self.began = time.monotonic()
        self.process_cpu_began = sum(psutil.Process().cpu_times()[:2])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        self.sample()
        wall = time.monotonic() - self.began
        process_cpu = sum(psutil.Process().cpu_times()[:2]) - self.process_cpu_began
        per_kind: dict[str, float] = {}
        for tid, seconds in self.threads.items():
            kind = self.names[tid]
            per_kind[kind] = per_kind.get(kind, 0.0) + seconds
        return {
            "wall_seconds": wall,
            "process_cpu_seconds": process_cpu,
            "monitor_cpu_seconds": sum(self.threads.values()),
            "monitor_threads": len(self.threads),
            "per_watch": per_kind,
        }

    def sample(self) -> None:
        watchers = {
            t.native_id: t.name
            for t in threading.enumerate()
            if t.name.startswith("observe-") and t.native_id is not None
        }
        if not watchers:
            return
        ticks = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
        for tid, name in watchers.items():
            seconds = _thread_cpu_seconds(tid)
            if seconds is None:
                seconds = ticks.get(tid)
            if seconds is not None:
                self.threads[tid] = seconds
                self.names[tid] = name

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()


_SAMPLER: list[_CpuSampler] = []


def _thread_cpu_seconds(tid: int) -> float | None:
    """On-CPU time of one thread of this process in ns precision (Linux schedstat);
    None where it is not available (psutil's clock ticks are 10 ms: too coarse for
    threads that mostly wait)."""
    try:
        text = Path(f"/proc/{os.getpid()}/task/{tid}/schedstat").read_text()
    except OSError:
        return None
    return int(text.split()[0]) / 1e9


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get(CPU_FILE_VARIABLE):
        sampler = _CpuSampler()
        sampler.start()
        _SAMPLER.append(sampler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get(CPU_FILE_VARIABLE)
    if path and _SAMPLER:
        Path(path).write_text(json.dumps(_SAMPLER.pop().stop()))


# ---- the independent watch (runs in the bench's process) ----


@dataclass(frozen=True)
class PodEvent:
    wall: float
    type: str
    name: str
    resource_version: str
    state: tuple[str, bool, int, bool]  # phase, ready, restarts, being deleted


def pod_state(pod: Any) -> tuple[str, bool, int, bool]:
    status = pod.status
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    restarts = sum(c.restart_count for c in status.container_statuses or [])
    return (
        status.phase or "",
        ready,
        restarts,
        pod.metadata.deletion_timestamp is not None,
    )


class IndependentWatch:
    """A plain list+watch of the service's pods, resumed from its resourceVersion."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config  # noqa: PLC0415 - not needed by the plugin

        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.api = client.CoreV1Api(api_client)
        self.events: list[PodEvent] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)

    def __enter__(self) -> IndependentWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(40)

    def _run(self) -> None:
        from kubernetes import watch  # noqa: PLC0415

        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    listed: Any = self.api.list_namespaced_pod(
                        NAMESPACE, label_selector=POD_SELECTOR, _request_timeout=15
                    )
                    version = listed.metadata.resource_version
                watcher: Any = watch.Watch()
                stream = watcher.stream(
                    self.api.list_namespaced_pod,
                    NAMESPACE,
                    label_selector=POD_SELECTOR,
                    resource_version=version,
                    timeout_seconds=5,
                    _request_timeout=15,
                )
                for event in stream:
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    self.events.append(
                        PodEvent(
                            time.time(),
                            event["type"],
                            pod.metadata.name,
                            version,
                            pod_state(pod),
                        )
                    )
                    if self._stop.is_set():
                        break
            except Exception as error:  # noqa: BLE001 - outermost loop: note it and re-list
                self.restarts += 1
                version = "" if "410" in str(error) else version
                time.sleep(0.5)


# ---- comparison (pure) ----


@dataclass(frozen=True)
class Coverage:
    events: int
    seen: int
    transitions: int
    transitions_seen: int
    missing: tuple[str, ...]


def transitions(events: list[PodEvent]) -> set[tuple[str, str]]:
    """(pod, resourceVersion) of the events whose pod state changed (or that add/delete it)."""
    last: dict[str, tuple[str, bool, int, bool]] = {}
    found = set()
    for event in events:
        if event.type != "MODIFIED" or last.get(event.name) != event.state:
            found.add((event.name, event.resource_version))
        last[event.name] = event.state
    return found


def coverage(events: list[PodEvent], timelines: list[Path]) -> Coverage:
    """Bench-watch pod events inside each timeline's span, and how many the timeline holds."""
    from resilience.observe import ResourceKind, load_jsonl  # noqa: PLC0415

    changed = transitions(events)
    total = seen = moved = moved_seen = 0
    missing = []
    for path in timelines:
        timeline = load_jsonl(path)
        recorded = [e for e in timeline.events if e.kind is ResourceKind.POD]
        if not timeline.events:
            continue
        start = min(e.wall for e in timeline.events)
        end = max(e.wall for e in timeline.events)
        versions = {(e.name, e.observation.resource_version) for e in recorded}
        for event in events:
            if not start <= event.wall <= end:
                continue
            key = (event.name, event.resource_version)
            total += 1
            seen += key in versions
            if key in changed:
                moved += 1
                moved_seen += key in versions
            if key not in versions:
                missing.append(
                    f"{path.stem}: {event.type} {event.name} rv {event.resource_version}"
                )
    return Coverage(total, seen, moved, moved_seen, tuple(missing))


# ---- the run ----


def cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resilience.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Sandbox:
    kubeconfig: Path
    ingress: str
    env: dict[str, str]
    boot_seconds: float


@contextlib.contextmanager
def sandbox(state: Path) -> Iterator[Sandbox]:
    env = {**os.environ, "HARMONYFLOW_SANDBOX_DIR": str(state)}
    began = time.perf_counter()
    try:
        up = cli("sandbox", "up", env=env, timeout=300)
        boot = time.perf_counter() - began
        if up.returncode != 0:
            raise SystemExit(f"sandbox up failed:\n{up.stdout[-2000:]}{up.stderr[-2000:]}")
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in cli("sandbox", "env", env=env, timeout=30).stdout.splitlines()
            if line.startswith("export ") and "=" in line
        )
        yield Sandbox(
            Path(exports["KUBECONFIG"]),
            exports["HARMONYFLOW_INGRESS_URL"],
            {k: v for k, v in exports.items() if k.startswith("AWS_")},
            boot,
        )
    finally:
        cli("sandbox", "down", env=env, timeout=120)


def suite_command(marker: str, box: Sandbox, reports: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "suites",
        "-m",
        marker,
        "--kube-context",
        CONTEXT,
        "--kubeconfig",
        str(box.kubeconfig),
        "--base-url",
        box.ingress,
        "--reports-dir",
        str(reports),
        "-p",
        "no:cacheprovider",
        "-q",
        *extra,
    ]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the `finally`s stop pytest and the sandbox


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser()
    parser.add_argument("-m", "--marker", default="resilience")
    parser.add_argument("--keep", type=Path, help="keep reports and pytest.out here")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hf-bench-suites-") as scratch:
        out = arguments.keep or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        with sandbox(Path(scratch) / "sandbox") as box:
            run_and_report(arguments.marker, box, out)


def run_and_report(marker: str, box: Sandbox, out: Path) -> None:
    env = {**os.environ, **box.env, CPU_FILE_VARIABLE: str(out / "monitor-cpu.json")}
    began = time.perf_counter()
    subprocess.run(
        suite_command(marker, box, out / "collect", "--collect-only"),
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    collect = time.perf_counter() - began
    command = suite_command(
        marker,
        box,
        out / "reports",
        "--keep-timeline",
        "--durations=0",
        "-p",
        "bench.suites_resilience",
    )
    with IndependentWatch(box.kubeconfig) as second_watch:
        began = time.perf_counter()
        run = run_interruptible(command, env, out / "pytest.out")
        wall = time.perf_counter() - began
        time.sleep(1.0)  # the last events of the last test
    summary = (run.stdout.strip().splitlines() or ["(no output)"])[-1]
    timelines = sorted((out / "reports" / "timelines").glob("*.jsonl"))
    seen = coverage(second_watch.events, timelines)
    cpu = json.loads((out / "monitor-cpu.json").read_text())
    total = wall + box.boot_seconds
    print(f"baseline sandbox up -> Available:   {box.boot_seconds:.1f}s")
    print(f"baseline pytest collection:         {collect:.1f}s")
    print(f"pytest suites -m {marker}: {wall:.1f}s (exit {run.returncode}: {summary})")
    print(
        f"  with the sandbox's boot: {total:.1f}s = {total / 60:.1f} min "
        f"({total / box.boot_seconds:.1f}x the boot, {wall / collect:.0f}x the collection); "
        f"target {TARGET_SECONDS / 60:.0f} min: {'met' if total <= TARGET_SECONDS else 'missed'}"
    )
    print(
        f"pod events of the independent watch while monitors ran: {seen.events}, in the "
        f"monitors' timelines: {seen.seen} ({_ratio(seen.seen, seen.events)}); state "
        f"transitions {seen.transitions}, seen {seen.transitions_seen} "
        f"({_ratio(seen.transitions_seen, seen.transitions)}); {len(timelines)} timelines, "
        f"{second_watch.restarts} re-lists of the independent watch"
    )
    for line in seen.missing[:10]:
        print(f"  missing: {line}")
    process = cpu["process_cpu_seconds"]
    monitors = cpu["monitor_cpu_seconds"]
    print(
        f"monitor threads: {monitors:.2f}s CPU over {cpu['wall_seconds']:.0f}s wall "
        f"({monitors / cpu['wall_seconds']:.2%} of one core), {_ratio(monitors, process)} of "
        f"the pytest process's {process:.1f}s CPU; {cpu['monitor_threads']} threads; "
        + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(cpu["per_watch"].items()))
    )
    print(f"logs and reports: {out}")


def run_interruptible(
    command: list[str], env: dict[str, str], output: Path
) -> subprocess.CompletedProcess[str]:
    """pytest, bounded; interrupted with SIGINT (so that its fixtures stop Locust and
    restore the target) when the bench is interrupted or the bound is hit."""
    with output.open("w") as sink:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
        try:
            process.wait(timeout=PYTEST_TIMEOUT_SECONDS)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
            raise
    return subprocess.CompletedProcess(command, process.returncode, output.read_text(), "")


def _ratio(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


if __name__ == "__main__":
    main()
