from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox.live import LiveSandbox, started

# node lifecycle shortened as an operator would for a test cluster (see test_sandbox_aws)
SANDBOX_FLAGS = [
    "--node-monitor-grace-period",
    "20",
    "--default-unreachable-toleration-seconds",
    "10",
    # the broker experiments stop RabbitMQ nodes and ask Prometheus about the outbox
    "--with",
    "rabbitmq",
    "--with",
    "monitoring",
]


@pytest.fixture(scope="module")
def chaos_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    """One sandbox for a module of experiments (`resilience sandbox up`, then `down`)."""
    yield from started(tmp_path_factory.mktemp("chaos") / "sandbox", SANDBOX_FLAGS)
