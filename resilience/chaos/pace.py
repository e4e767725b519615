"""Holding a fault for a while, as an activity Ctrl-C can cut short.

chaoslib's `pauses: {after: N}` sleeps in a `finally`: interrupted during the activity
before it, the run still sleeps N seconds before it can roll back. A hold is its own
activity, so an interruption ends it at once.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["hold"]


def hold(
    seconds: float,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> float:
    """Keep the current fault in place for `seconds` (the time the system has to cope)."""
    time.sleep(float(seconds))
    return float(seconds)
