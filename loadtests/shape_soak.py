"""A slow ramp (HF_SHAPE_RAMP_SECONDS) to HF_SHAPE_USERS, held for HF_SHAPE_DURATION seconds.

Add to -f: `locust -f loadtests/sessions_rest.py,loadtests/shape_soak.py ...` (stages.py).
"""

from harmonyflow.shapes import StagedShape


class SoakShape(StagedShape):
    shape = "soak"
