"""`LoadTestShape`s over the pure stages of `stages.py`, parameters from HF_SHAPE_* env vars.

Each `loadtests/shape_<name>.py` file defines one concrete subclass, so a shape is
chosen by adding its file to `-f` (Locust uses the shape class it finds):

    locust -f loadtests/sessions_rest.py,loadtests/shape_spike.py --headless -H URL
"""

from __future__ import annotations

import os
from typing import ClassVar

from locust import LoadTestShape

from .stages import ShapeParams, Stage, build_stages, stage_at


class StagedShape(LoadTestShape):
    """Follows `build_stages(shape, ShapeParams.from_env(os.environ))`; ends after the last."""

    abstract: ClassVar[bool] = True
    shape: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.stages: list[Stage] = build_stages(self.shape, ShapeParams.from_env(os.environ))

    def tick(self) -> tuple[int, float] | None:
        return stage_at(self.stages, self.get_run_time())  # type: ignore[no-untyped-call]
