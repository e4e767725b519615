"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.sandbox.cluster_harness import SandboxHarness


@pytest.fixture
def servers_installed() -> None:
    """PostgreSQL 15 and redis-server, which `make setup` installs; missing is a failure."""
    if (
        not Path("/usr/lib/postgresql/15/bin/postgres").exists()
        or not Path("/usr/bin/redis-server").exists()
    ):
        pytest.fail("PostgreSQL 15 or redis-server is not installed (make setup installs them)")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHarness]:
    """A sandbox control plane for one test module; every process it started is gone after."""
    directory: Path = tmp_path_factory.mktemp("sandbox")
    harness = SandboxHarness(directory)
    try:
        yield harness
    finally:
        harness.close()
        survivors = [
            child.pid
            for child in psutil.Process().children(recursive=True)
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        ]
        assert not survivors, f"processes outlived the sandbox: {survivors}"
