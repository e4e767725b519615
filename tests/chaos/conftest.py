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
]
# The broker experiments stop RabbitMQ nodes and ask Prometheus about the outbox. Three
# Erlang VMs take ~18 s to start and a core's share while up, so only when one is selected.
BROKER_FLAGS = ["--with", "rabbitmq", "--with", "monitoring"]


def broker_experiment_selected(request: pytest.FixtureRequest) -> bool:
    """Whether this module's selected tests include a broker experiment."""
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        name = str(callspec.params.get("name", "")) if callspec is not None else ""
        if getattr(item, "module", None) is request.module and name.startswith("broker-"):
            return True
    return False


@pytest.fixture(scope="module")
def chaos_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSandbox]:
    """One sandbox for a module of experiments (`resilience sandbox up`, then `down`)."""
    flags = SANDBOX_FLAGS + (BROKER_FLAGS if broker_experiment_selected(request) else [])
    yield from started(tmp_path_factory.mktemp("chaos") / "sandbox", flags)
