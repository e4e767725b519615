"""The load generator against bare Locust, on this machine, in one run.

Prints, each against a baseline measured in the same run on the same target:

(a) REST: our `RestSessions` (ledger-checked) against a bare `FastHttpUser` doing the
    same mix of calls unchecked: load-side CPU per request, and the ratio bare / ours
    (1.0 = as cheap as bare Locust; the goal is >= 0.8);
(b) WebSocket: our user's ping round trips against a websocket-client loop firing the
    same Locust event, and pushed events that our reader checks seq by seq against a
    loop that only parses them: CPU per message, ratio bare / ours;
(c) capacity: sockets one Locust process holds subscribed with our user (REST create,
    subscribe, a ping every HF_WAIT_MIN..MAX seconds, heartbeats answered), and the
    p99 of the ping round trip once all are up (the goal: >= 10,000 with p99 < 1 s).

The target is `bench/loadgen_target.py` (a loopback server with the service's protocol
and heartbeats), in a process of its own; each load runs in a fresh process
(`bench/loadgen_run.py`), whose own CPU (getrusage) over the measured window is what
counts. The soft limit of open files is raised to the hard one first (10,000 sockets
need 10,000 descriptors on each side). Everything binds to 127.0.0.1 and stops by
itself; nothing is asserted.

    .venv/bin/python -m bench.loadgen [--seconds 10] [--users 20] [--sockets 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 400.0  # seconds; a run that takes longer is killed


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextmanager
def target(heartbeat: float, push_interval: float = 0.0) -> Iterator[str]:
    command = [sys.executable, "-m", "bench.loadgen_target", "--heartbeat", str(heartbeat),
               "--push-interval", str(push_interval)]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "port <n>", or "" if it died
        if not line.startswith("port "):
            raise RuntimeError(f"target did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def pushed(host: str) -> int:
    import urllib.request  # noqa: PLC0415 - the parent process only

    with urllib.request.urlopen(f"{host}/bench/pushed", timeout=10) as answer:
        return int(json.loads(answer.read())["pushed"])


def run(
    workload: str, host: str, users: int, rate: float, warm: float, seconds: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    command = [sys.executable, "-m", "bench.loadgen_run", workload, host, str(users), str(rate),
               str(warm), str(seconds)]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{workload} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def per_message(result: dict[str, Any], messages: int) -> float:
    return float(result["cpu_s"]) / max(messages, 1) * 1e6  # µs of CPU


def compare(title: str, bare: float, ours: float, unit: str = "µs CPU/request") -> None:
    print(f"  bare Locust: {bare:8.1f} {unit}")
    print(f"  ours:        {ours:8.1f} {unit}")
    print(f"  {title}: bare / ours = {bare / ours:.2f}  (goal >= 0.80)")


def bench_rest(arguments: argparse.Namespace) -> None:
    print(f"(a) REST, {arguments.users} users, no wait, {arguments.seconds:.0f} s each")
    env = {"HF_WAIT_MIN": "0", "HF_WAIT_MAX": "0", "HF_SESSIONS_PER_USER": "3"}
    with target(heartbeat=30) as host:
        bare = run("rest-bare", host, arguments.users, 100, 2, arguments.seconds, env)
        ours = run("rest", host, arguments.users, 100, 2, arguments.seconds, env)
    for name, result in (("bare", bare), ("ours", ours)):
        print(f"  {name}: {result['http_requests']} requests, {result['cpu_s']:.2f} s CPU, "
              f"failures {result['failures'] or 'none'}")  # fmt: skip
    compare(
        "REST", per_message(bare, bare["http_requests"]), per_message(ours, ours["http_requests"])
    )


def bench_ws(arguments: argparse.Namespace) -> None:
    print(f"(b) WebSocket ping round trips, {arguments.users} users, no wait")
    env = {"HF_WAIT_MIN": "0", "HF_WAIT_MAX": "0"}
    with target(heartbeat=30) as host:
        bare = run("ws-bare", host, arguments.users, 100, 2, arguments.seconds, env)
        ours = run("ws", host, arguments.users, 100, 2, arguments.seconds, env)
    for name, result in (("bare", bare), ("ours", ours)):
        print(f"  {name}: {result['pings']} pings, {result['cpu_s']:.2f} s CPU, "
              f"failures {result['failures'] or 'none'}")  # fmt: skip
    compare(
        "WS ping",
        per_message(bare, bare["pings"]),
        per_message(ours, ours["pings"]),
        "µs CPU/round trip",
    )
    sockets = arguments.push_sockets
    print(f"(b) pushed events, {sockets} sockets, a push to each every 0.1 s")
    results = {}
    for workload in ("push-bare", "push"):
        with target(heartbeat=30, push_interval=0.1) as host:
            results[workload] = measure_pushes(workload, host, sockets, arguments.seconds)
    compare("WS push", results["push-bare"], results["push"], "µs CPU/event")


def measure_pushes(workload: str, host: str, sockets: int, seconds: float) -> float:
    """CPU per event received: the events the target sent during the whole run (its
    counter, read before and after) over the load's CPU in the measured window, scaled
    to the measured share of the run."""
    before = pushed(host)
    result = run(workload, host, sockets, 200, 2, seconds, {"HF_WAIT_MIN": "1"})
    events = pushed(host) - before
    share = result["wall_s"] / max(result["wall_s"] + 2 + result["spawned_after_s"], 1e-6)
    print(f"  {workload}: ~{events * share:.0f} events in the window, {result['cpu_s']:.2f} s CPU")
    return per_message(result, int(events * share))


def bench_capacity(arguments: argparse.Namespace) -> None:
    sockets = arguments.sockets
    print(f"(c) capacity: {sockets} WebSocket users, a ping every 20-40 s, server heartbeat "
          f"10 s (pong within 5 s), hold {arguments.hold:.0f} s after all are up")  # fmt: skip
    env = {"HF_WAIT_MIN": "20", "HF_WAIT_MAX": "40", "HF_TIMEOUT": "10"}
    with target(heartbeat=10) as host:
        result = run("hold", host, sockets, arguments.spawn_rate, 5, arguments.hold, env)
    print(f"  spawned in {result['spawned_after_s']:.0f} s; connected at the end: "
          f"{result['connected']} of {result['users']}")  # fmt: skip
    print(f"  {result['pings']} pings in the window, p50 {result['ping_p50_ms']} ms, "
          f"p99 {result['ping_p99_ms']} ms; load CPU {result['cpu_s']:.1f} s "
          f"in {result['wall_s']:.0f} s; failures {result['failures'] or 'none'}")  # fmt: skip
    p99 = result["ping_p99_ms"]
    held = result["connected"] if p99 is not None and p99 < 1000 else 0
    print(f"  sockets held by one Locust process with p99 ping < 1 s: {held} (goal >= 10000)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--push-sockets", type=int, default=200)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--spawn-rate", type=float, default=500.0)
    parser.add_argument("--hold", type=float, default=45.0)
    parser.add_argument("--only", choices=["rest", "ws", "capacity"], action="append")
    arguments = parser.parse_args()
    print(f"open files per process: {raise_open_files()}")
    chosen = arguments.only or ["rest", "ws", "capacity"]
    if "rest" in chosen:
        bench_rest(arguments)
    if "ws" in chosen:
        bench_ws(arguments)
    if "capacity" in chosen:
        bench_capacity(arguments)


if __name__ == "__main__":
    main()
