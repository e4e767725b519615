"""HF_SHAPE_USERS, then HF_SHAPE_SPIKE_USERS from HF_SHAPE_SPIKE_AT for HF_SHAPE_SPIKE_SECONDS.

Add to -f: `locust -f loadtests/sessions_rest.py,loadtests/shape_spike.py ...` (stages.py).
"""

from harmonyflow.shapes import StagedShape


class SpikeShape(StagedShape):
    shape = "spike"
