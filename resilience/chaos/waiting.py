"""One bounded wait for every "how long until..." probe.

A probe that measures recovery polls a condition, returns the seconds it took, and
fails past its bound naming what it last saw, so a stuck cluster is reported, never
waited on forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chaoslib.exceptions import ActivityFailed

POLL_SECONDS = 0.5


def seconds_until(
    check: Callable[[], tuple[bool, str]],
    timeout: float | str,
    what: str,
    interval: float = POLL_SECONDS,
) -> float:
    """Poll `check` (-> done, what it saw) until done; the seconds it took.

    Fails with "`what` not reached after N s: <last seen>" past `timeout` (which may
    arrive as a string from a `--var`). `check` may raise ActivityFailed to give up early.
    """
    limit = float(timeout)
    began = time.monotonic()
    seen = "nothing yet"
    while time.monotonic() - began < limit:
        done, seen = check()
        if done:
            return round(time.monotonic() - began, 3)
        time.sleep(interval)
    raise ActivityFailed(f"{what} not reached after {limit:.0f} s: {seen}")
