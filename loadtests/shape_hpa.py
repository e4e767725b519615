"""HPA trigger: warm, a peak above the CPU target held for the HPA's windows, cool down.

Add to -f: `locust -f loadtests/sessions_rest.py,loadtests/shape_hpa.py ...` (stages.py).
"""

from harmonyflow.shapes import StagedShape


class HpaTriggerShape(StagedShape):
    shape = "hpa"
