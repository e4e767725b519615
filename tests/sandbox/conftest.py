from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.sandbox.cluster_harness import SandboxHarness
from tests.sandbox.live import LiveSandbox, started


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHarness]:
    """A whole sandbox for one test module; every process it started is gone afterwards."""
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


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSandbox]:
    """`resilience sandbox up` once per module, with the module's `SANDBOX_UP_FLAGS`."""
    flags: list[str] = list(getattr(request.module, "SANDBOX_UP_FLAGS", []))
    yield from started(tmp_path_factory.mktemp("live") / "sandbox", flags)
