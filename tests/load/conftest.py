"""Fixtures of the load tests: the locustfiles' package on sys.path, a running sandbox
for the live tests, and a check that no Locust process outlives a test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.live import LiveSandbox, started
from tests.load.locustrun import LOADTESTS, locust_processes

if str(LOADTESTS) not in sys.path:
    sys.path.insert(0, str(LOADTESTS))  # the locustfiles' pure helpers: `import harmonyflow.x`


@pytest.fixture(autouse=True)
def no_locust_left_behind() -> Iterator[None]:
    yield
    left = locust_processes()
    for process in left:  # clean up for the next test, then fail this one
        process.kill()
    assert not left, f"Locust processes outlived the test: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def live_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    """One whole sandbox (PostgreSQL, Redis, nginx, three pods) for a test module, started
    and stopped the way users do it; every process it started is gone afterwards."""
    state = tmp_path_factory.mktemp("load") / "sandbox"
    yield from started(state)
    survivors = [p.pid for p in psutil.process_iter(["cmdline"]) if _started_here(p, state)]
    assert not survivors, f"processes outlived the sandbox: {survivors}"


def _started_here(process: psutil.Process, state: Path) -> bool:
    """A live process whose command line names the sandbox's state dir (daemon, nginx)."""
    try:
        cmdline = " ".join(process.info["cmdline"] or [])
        return str(state) in cmdline and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
