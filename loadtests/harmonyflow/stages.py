"""Load shapes as data: a list of stages (until second, users, spawn rate), built from
parameters that come from environment variables (the runner sets them from a profile).

Pure, so the shapes are table-tested without Locust; `shapes.py` wraps them in
`LoadTestShape`s. Every shape ends: `stage_at` returns None after the last stage.

    >>> spike = build_stages("spike", ShapeParams(users=5, spike_users=20, spike_at=10,
    ...                                            spike_seconds=5, duration=30))
    >>> [stage_at(spike, t) for t in (0, 12, 16, 31)]
    [(5, 5.0), (20, 20.0), (5, 20.0), None]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SHAPES = ("baseline", "step", "spike", "soak", "hpa")
ENV_PREFIX = "HF_SHAPE_"


@dataclass(frozen=True)
class Stage:
    until: float  # seconds since the shape started
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class ShapeParams:
    """Every knob of every shape; each is the env var HF_SHAPE_<NAME UPPER>."""

    users: int = 10  # baseline / soak level, the spike's floor, the HPA profile's rest level
    spawn_rate: float = 5.0
    duration: float = 60.0  # total seconds (baseline, step, spike, soak)
    step_users: int = 5  # step: users added per step
    step_seconds: float = 20.0
    max_users: int = 50  # step: ceiling
    spike_users: int = 50
    spike_at: float = 20.0
    spike_seconds: float = 10.0
    ramp_seconds: float = 60.0  # soak: time to reach `users`
    peak_users: int = 60  # hpa: enough load to pass the CPU target
    warm_seconds: float = 30.0  # hpa: at `users` before the peak
    hold_seconds: float = 180.0  # hpa: at the peak (HPA sync period x stabilisation)
    cooldown_seconds: float = 120.0  # hpa: back at `users`, to watch the scale-down

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ShapeParams:
        """`ValueError` names the variable: `HF_SHAPE_USERS: 'ten' is not a number`."""
        values: dict[str, int | float] = {}
        for spec in dataclasses.fields(cls):
            key = ENV_PREFIX + spec.name.upper()
            text = env.get(key, "").strip()
            if not text:
                continue
            kind = int if spec.type in ("int", int) else float
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(
                    f"{key}: {text!r} is not {'an integer' if kind is int else 'a number'}"
                ) from None
            if value < 0:
                raise ValueError(f"{key}: must be >= 0, got {text}")
            values[spec.name] = value
        return cls(**values)  # type: ignore[arg-type]


def build_stages(shape: str, p: ShapeParams) -> list[Stage]:
    """The stages of one named shape (see `SHAPES`); `ValueError` for an unknown name."""
    if shape == "baseline":
        return [Stage(p.duration, p.users, p.spawn_rate)]
    if shape == "step":
        stages, users, until = [], p.step_users, p.step_seconds
        while until < p.duration and users < p.max_users:
            stages.append(Stage(until, users, p.spawn_rate))
            users, until = users + p.step_users, until + p.step_seconds
        return [*stages, Stage(p.duration, min(users, p.max_users), p.spawn_rate)]
    if shape == "spike":
        # The spike ramps at its own size per second: a stage shorter than its ramp
        # would be skipped (locust.md §2, "known limitation").
        rate = float(max(p.spike_users, 1))
        return [
            Stage(p.spike_at, p.users, p.spawn_rate),
            Stage(p.spike_at + p.spike_seconds, p.spike_users, rate),
            Stage(p.duration, p.users, rate),
        ]
    if shape == "soak":
        rate = max(p.users / p.ramp_seconds, 0.1) if p.ramp_seconds > 0 else p.spawn_rate
        return [Stage(p.duration, p.users, rate)]
    if shape == "hpa":
        warm, hold = p.warm_seconds, p.warm_seconds + p.hold_seconds
        return [
            Stage(warm, p.users, p.spawn_rate),
            Stage(hold, p.peak_users, max(p.spawn_rate, p.peak_users / 10)),
            Stage(hold + p.cooldown_seconds, p.users, max(p.spawn_rate, p.peak_users / 10)),
        ]
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def stage_at(stages: Sequence[Stage], elapsed: float) -> tuple[int, float] | None:
    """(users, spawn rate) at `elapsed` seconds; None once the last stage is over."""
    for stage in stages:
        if elapsed < stage.until:
            return stage.users, stage.spawn_rate
    return None
