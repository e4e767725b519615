"""The sandbox's AWS endpoint on a free loopback port, over a recording fake of the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.aws.endpoint import AwsEndpoint
from tests.aws.fakes import RecordingEffects


@pytest.fixture
def endpoint() -> Iterator[tuple[AwsEndpoint, RecordingEffects]]:
    effects = RecordingEffects()
    server = AwsEndpoint(effects)
    server.start()
    try:
        yield server, effects
    finally:
        server.stop()
