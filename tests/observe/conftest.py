from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.sandbox.cluster_harness import SandboxHarness


@pytest.fixture(autouse=True)
def no_watch_thread_left_behind() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("observe-")]
    assert not left, f"watch threads outlived the test: {left}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHarness]:
    """A control-plane-only sandbox (no databases, no ingress); nothing outlives it."""
    directory: Path = tmp_path_factory.mktemp("observe-sandbox")
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
