"""Constant load: HF_SHAPE_USERS users for HF_SHAPE_DURATION seconds.

Add to -f: `locust -f loadtests/sessions_rest.py,loadtests/shape_baseline.py ...` (stages.py).
"""

from harmonyflow.shapes import StagedShape


class BaselineShape(StagedShape):
    shape = "baseline"
