"""`resilience certify --processes N`: Locust's own multi-process mode, live against the
bench's loopback target, which counts the REST requests it served; a CLI mistake is one
line and exit 2.

Tolerance: a request is counted by the target once served, by Locust once its answer is
read; a run that stops with a request in flight has it served but not recorded, and a
user has at most one in flight. So Locust's totals may fall short of the target's by at
most one request per user, never exceed them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bench.loadgen_target import Target
from resilience.load.capacity import REST_TYPES, Capacity, plan_capacity
from resilience.load.requests import read_timeline
from tests.builders import REPO_ROOT
from tests.cli import run_resilience
from tests.load.locustrun import locust_processes
from tests.load.seeded import serving_app

# Small enough for two cores: 4 s ramp, 14 s hold; 5 % short fails (as the release's).
CAPACITY = {
    "peak_rps": 30,
    "sockets": 4,
    "write_share": 0.3,
    "ramp_seconds": 4,
    "hold_seconds": 14,
    "rest_wait_seconds": 0.5,
    "socket_task_seconds": 1,
    "tolerance": 0.05,
}
PROFILE = {
    "description": "capacity over two Locust processes",
    "capacity": CAPACITY,
    "load": {
        "locustfiles": ["sessions_rest.py", "sessions_ws.py"],
        "env": {"HF_TIMEOUT": "5"},
    },
    "slos": [
        {"name": "no-lost-writes", "kind": "failures", "max_failures": 0, "types": ["LEDGER"]}
    ],
}


class CountingTarget:
    """The bench target, counting the REST requests it answered, by method."""

    def __init__(self) -> None:
        self.served: dict[str, int] = {}

    @web.middleware
    async def count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith("/api/v1/sessions"):
            self.served[request.method] = self.served.get(request.method, 0) + 1
        return response

    def app(self) -> web.Application:
        app = Target(heartbeat=30.0, push_interval=0.0).app()
        app.middlewares.append(self.count)
        return app


@pytest.fixture
def counting() -> Iterator[tuple[CountingTarget, str]]:
    target = CountingTarget()
    with serving_app(target.app()) as port:
        yield target, f"http://127.0.0.1:{port}"


def test_two_processes_drive_the_capacity_and_their_totals_are_what_the_target_served(
    counting: tuple[CountingTarget, str], tmp_path: Path
) -> None:
    target, host = counting
    profile = tmp_path / "two.yaml"
    profile.write_text(json.dumps(PROFILE))  # JSON is YAML
    command = [sys.executable, "-m", "resilience.cli", "certify", "--profile", str(profile)]
    command += ["--host", host, "--reports-dir", str(tmp_path), "--processes", "2"]
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        most = 0
        began = time.monotonic()
        while run.poll() is None and time.monotonic() - began < 120:
            most = max(most, len(locust_processes()))
            time.sleep(0.5)
        if run.poll() is None:
            run.kill()
        output = run.communicate(timeout=30)[0]
    assert run.returncode == 0, output[-3000:]
    assert most >= 3, f"expected a master and 2 forked workers, saw {most} locust processes"
    (out,) = tmp_path.glob("certify-two-*")
    certificate = json.loads((out / "certificate.json").read_text())
    plan = plan_capacity(Capacity(**CAPACITY))

    served = sum(target.served.values())
    in_flight = plan.users  # at most one request per user unrecorded at the stop
    recorded = sum(
        r.ok + r.failed for r in read_timeline(out / "timeline.jsonl").records
        if r.request_type in REST_TYPES
    )  # fmt: skip
    with (out / "locust_stats.csv").open() as stream:
        merged = sum(
            int(row["Request Count"]) for row in csv.DictReader(stream) if row["Type"] in REST_TYPES
        )
    assert served - in_flight <= recorded <= served, (served, recorded)
    assert served - in_flight <= merged <= served, (served, merged)

    figures = certificate["capacity"]
    assert figures["target"] == {"peak_rps": 30, "sockets": 4, "write_share": 0.3}
    assert figures["achieved"]["sockets"] == 4
    assert figures["achieved"]["peak_rps"] >= 30 * 0.95
    assert figures["plan"]["rest_users"] == plan.rest_users
    assert certificate["verdict"] == "PASS", certificate["problems"]
    assert not locust_processes()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("0", "--processes must be at least 1, got 0", id="zero"),
        pytest.param("-2", "--processes must be at least 1, got -2", id="negative"),
        pytest.param("two", "argument --processes: invalid int value: 'two'", id="not-an-int"),
    ],
)
def test_a_bad_processes_count_is_one_line_and_exit_2(value: str, message: str) -> None:
    done = run_resilience(
        "certify", "--profile", "smoke", "--host", "http://127.0.0.1:9", "--processes", value
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stdout == ""
