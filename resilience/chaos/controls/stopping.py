"""One graceful stop per method, whoever asks first.

The load safeguard, the stop conditions and the dead-man switch each watch from a
thread of their own and stop the run the way SIGUSR1 does (chaoslib's
`exit_gracefully`: the method ends where it is, the rollbacks run). Only the first
request may send it: a second SIGUSR1 would land in the rollbacks, where chaoslib
takes it as "stop rolling back" and leaves the fault in place. Later requests, and
requests outside the method, are only logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from chaoslib.exit import exit_gracefully

log = logging.getLogger("chaostoolkit")
_lock = threading.Lock()


@dataclass(frozen=True)
class StopRequest:
    """Who stopped the method (`load`, `stop-condition`, `dead-man`) and why."""

    by: str
    reason: str


class _Window:
    armed = False
    first: StopRequest | None = None


def arm() -> None:
    """The method starts: stops may be requested (the first of several callers resets)."""
    with _lock:
        if not _Window.armed:
            _Window.armed = True
            _Window.first = None


def disarm() -> None:
    """The method is over (or the rollbacks begin): no stop may be sent any more."""
    with _lock:
        _Window.armed = False


def request(by: str, reason: str) -> bool:
    """Stop the method now unless it is over or already stopping; True when this call did."""
    with _lock:
        if not _Window.armed or _Window.first is not None:
            log.warning("%s: %s (the method is already over or stopping)", by, reason)
            return False
        _Window.first = StopRequest(by, reason)
    log.error("%s: %s; stopping the method, rollbacks follow", by, reason)
    exit_gracefully()
    return True


def first() -> StopRequest | None:
    """The request that stopped this run's method, if any."""
    return _Window.first
