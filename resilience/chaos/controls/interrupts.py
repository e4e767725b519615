"""Control: Ctrl-C and SIGTERM stop the experiment, and its rollbacks run.

chaoslib turns SIGTERM into an exception raised wherever the main thread is; inside
a Python activity that exception becomes a mere failed activity, and the method
goes on. This control (installed when the experiment starts, after chaoslib's own
handlers) makes SIGTERM act like Ctrl-C: a KeyboardInterrupt, which no activity
swallows, so the run ends as `interrupted` and the rollbacks run. The previous
handlers come back when the experiment ends.

    controls:
      - name: interrupts
        provider: {type: python, module: resilience.chaos.controls.interrupts}
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

_saved: dict[int, Any] = {}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def before_experiment_control(context: dict[str, Any], **kwargs: Any) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        _saved[signum] = signal.signal(signum, _interrupt)


def after_experiment_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    while _saved:
        signum, handler = _saved.popitem()
        signal.signal(signum, handler)
