"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from resilience.safety import undo_journal
from tests.prometheus_fake import FakePrometheus
from tests.sandbox.cluster_harness import SandboxHarness


@pytest.fixture(scope="session", autouse=True)
def recovery_journal_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Undos the tests journal (every Locust run journals one) go to a file of this
    session, never to the checkout's reports/recovery.jsonl that `resilience recover`
    would replay; a test naming its own journal still wins."""
    path = tmp_path_factory.mktemp("recovery") / "recovery.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(undo_journal.ENV_VAR, str(path))
        yield path


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


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    """A stand-in Prometheus (tests/prometheus_fake.py) for unit tests of alert readers."""
    fake = FakePrometheus()
    try:
        yield fake
    finally:
        fake.close()
