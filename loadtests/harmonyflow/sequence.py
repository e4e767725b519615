"""Sequence numbers pushed over the WebSocket: gaps and duplicates, counted per session.

The service promises every event of a subscribed session once, in `seq` order, also
across reconnects (the client resubscribes with `since` = the last seq it saw). The
tracker checks that promise message by message.

    >>> tracker = SequenceTracker()
    >>> tracker.start("s", since=0)
    >>> [tracker.observe("s", seq) for seq in (1, 2, 4, 4)]
    [Step(missing=0, duplicate=False), Step(missing=0, duplicate=False), \
Step(missing=1, duplicate=False), Step(missing=0, duplicate=True)]
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    missing: int  # events skipped before this one (a gap)
    duplicate: bool  # this seq (or an older one) was already delivered


def classify(last: int, seq: int) -> Step:
    """What `seq` after `last` means: in order, a gap of `seq - last - 1`, or a repeat."""
    if seq <= last:
        return Step(missing=0, duplicate=True)
    return Step(missing=seq - last - 1, duplicate=False)


class SequenceTracker:
    """The last seq seen per session, and the totals of gaps and duplicates."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self.gaps = 0
        self.missing = 0
        self.duplicates = 0

    def start(self, session: str, since: int) -> None:
        """Subscribed with `since`: the next event must be `since + 1`."""
        self._last[session] = max(since, self._last.get(session, 0))

    def last(self, session: str) -> int:
        return self._last.get(session, 0)

    def observe(self, session: str, seq: int) -> Step:
        step = classify(self._last.get(session, 0), seq)
        if step.duplicate:
            self.duplicates += 1
        else:
            self._last[session] = seq
            if step.missing:
                self.gaps += 1
                self.missing += step.missing
        return step
