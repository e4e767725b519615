"""Steps of HF_SHAPE_STEP_USERS every HF_SHAPE_STEP_SECONDS, up to HF_SHAPE_MAX_USERS.

Add to -f: `locust -f loadtests/sessions_rest.py,loadtests/shape_step.py ...` (stages.py).
"""

from harmonyflow.shapes import StagedShape


class StepShape(StagedShape):
    shape = "step"
