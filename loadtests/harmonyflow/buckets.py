"""Response-time buckets of the timeline: finer than Locust's own at the low end.

Locust rounds below 100 ms to whole milliseconds, so WebSocket round trips of a
fraction of a millisecond all read 0 or 1 ms (../shared/reference/locust.md §4.1).
The timeline keeps three significant digits instead, which bounds the error of any
percentile read from it to 0.5 % while keeping a histogram to a few hundred keys.

    >>> [bucket_ms(v) for v in (0.0123, 0.4567, 3.14159, 12.345, 123.45, 4321.0, 98765.0)]
    [0.0123, 0.457, 3.14, 12.3, 123.0, 4320.0, 98800.0]
"""

from __future__ import annotations

import math


def bucket_ms(milliseconds: float) -> float:
    """`milliseconds` rounded to three significant digits; negatives count as 0."""
    if milliseconds <= 0 or not math.isfinite(milliseconds):
        return 0.0
    digits = 2 - math.floor(math.log10(milliseconds))
    return round(milliseconds, digits)
