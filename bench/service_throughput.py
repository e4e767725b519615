"""The reference service's requests per CPU-second through the nginx ingress.

Baseline, measured in the same run with the same client: nginx serving a static
file. Both figures are requests per second of CPU spent by the server side (the
service's pod processes, or the static nginx's workers), so that a noisy shared
machine moves both alike; the ratio is what to compare across changes.
Printed, never asserted.

    .venv/bin/python bench/service_throughput.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parent.parent
NGINX = "/usr/sbin/nginx"


async def load(url: str, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                await response.read()
                done += response.status == 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def measure(url: str, pids: list[int], seconds: float, concurrency: int) -> tuple[float, float]:
    before = cpu_seconds(pids)
    began = time.monotonic()
    count = asyncio.run(load(url, seconds, concurrency))
    wall = time.monotonic() - began
    used = max(cpu_seconds(pids) - before, 1e-6)
    return count / wall, count / used


def static_nginx(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (directory / "logs").mkdir()
    (directory / "www").mkdir()
    (directory / "www" / "session.json").write_text('{"id":"x","version":1,"state":{}}')
    (directory / "nginx.conf").write_text(
        "worker_processes 1; error_log logs/error.log; pid nginx.pid; user root;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {directory}/www; }} }}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", "nginx.conf", "-g", "daemon off;"]
    )
    time.sleep(0.5)
    return process, f"http://127.0.0.1:{port}/session.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as scratch:
        state = Path(scratch) / "sandbox"
        env = {**os.environ, "HARMONYFLOW_SANDBOX_DIR": str(state)}
        cli = [sys.executable, "-m", "resilience.cli", "sandbox"]
        subprocess.run([*cli, "up"], cwd=REPO, env=env, check=True, capture_output=True)
        nginx, static_url = static_nginx(Path(scratch))
        try:
            run(state, static_url, nginx.pid, arguments)
        finally:
            nginx.terminate()
            nginx.wait(10)
            subprocess.run([*cli, "down"], cwd=REPO, env=env, check=False, capture_output=True)


def run(state: Path, static_url: str, static_pid: int, arguments: argparse.Namespace) -> None:
    ingress = json.loads((state / "state.json").read_text())["ingress_url"]
    request = urllib.request.Request(
        f"{ingress}/api/v1/sessions",
        data=b'{"owner":"bench","state":{"a":1}}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        session = json.loads(response.read())["id"]
    pods = [
        int(p.name)
        for p in (state / "pids").iterdir()
        if p.name.isdigit() and "session_state" in p.read_text()
    ]
    workers = [c.pid for c in psutil.Process(static_pid).children()] + [static_pid]
    static_rps, static_per_cpu = measure(
        static_url, workers, arguments.seconds, arguments.concurrency
    )
    url = f"{ingress}/api/v1/sessions/{session}"
    service_rps, service_per_cpu = measure(url, pods, arguments.seconds, arguments.concurrency)
    print(
        f"static file, nginx:          {static_rps:8.0f} req/s  "
        f"{static_per_cpu:8.0f} req per CPU-second"
    )
    print(
        f"GET session through ingress: {service_rps:8.0f} req/s  "
        f"{service_per_cpu:8.0f} req per CPU-second of the {len(pods)} pods"
    )
    print(f"ratio service / static per CPU-second: {service_per_cpu / static_per_cpu:.3f}")


if __name__ == "__main__":
    main()
