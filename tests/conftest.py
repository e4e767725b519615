"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def servers_installed() -> None:
    """PostgreSQL 15 and redis-server, which `make setup` installs; missing is a failure."""
    if (
        not Path("/usr/lib/postgresql/15/bin/postgres").exists()
        or not Path("/usr/bin/redis-server").exists()
    ):
        pytest.fail("PostgreSQL 15 or redis-server is not installed (make setup installs them)")
