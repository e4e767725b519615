"""The `live` fixture: a whole sandbox (tests/live.py) for a module of tests/sandbox/live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import LiveSandbox, started


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSandbox]:
    """`resilience sandbox up` once per module, with the module's `SANDBOX_UP_FLAGS`."""
    flags: list[str] = list(getattr(request.module, "SANDBOX_UP_FLAGS", []))
    yield from started(tmp_path_factory.mktemp("live") / "sandbox", flags)
