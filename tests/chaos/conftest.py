from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience.targets.sandbox import requested_extras, with_flags
from tests.live import FAST_NODE_LIFECYCLE_FLAGS, LiveSandbox, started


@pytest.fixture(scope="module")
def chaos_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSandbox]:
    """One sandbox for a module of experiments (`resilience sandbox up`, then `down`), with
    the optional parts its selected tests ask for (`sandbox_with`)."""
    selected = (i for i in request.session.items if getattr(i, "module", None) is request.module)
    flags = [*FAST_NODE_LIFECYCLE_FLAGS, *with_flags(requested_extras(selected))]
    yield from started(tmp_path_factory.mktemp("chaos") / "sandbox", flags)
