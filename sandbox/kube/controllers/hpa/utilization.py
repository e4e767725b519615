"""Usage against requests and targets: upstream's
`pkg/controller/podautoscaler/metrics/utilization.go` (GetResourceUtilizationRatio,
GetMetricUsageRatio).
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.kube.controllers.hpa.model import MetricError, clamp_int32, go_div


def resource_utilization_ratio(
    values: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """(usage ratio, utilization %, raw average milli) over pods with a request.

    utilization = int(sum(usage) * 100 / sum(request)), truncated; metrics for
    pods without a known request are ignored.

    Example: usage 300m, 500m, 700m over requests of 1000m each with a 30 %
    target: utilization int(1500 * 100 / 3000) = 50, ratio 50 / 30 = 1.67, raw
    average 1500 / 3 = 500.
    """
    metrics_total = requests_total = entries = 0
    for pod_name, value in values.items():
        request = requests.get(pod_name)
        if request is None:
            continue  # "we check for missing requests elsewhere"
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = clamp_int32(go_div(metrics_total * 100, requests_total))
    raw_average = go_div(metrics_total, entries)
    return utilization / target_utilization, utilization, raw_average


def metric_usage_ratio(values: Mapping[str, int], target_usage: int) -> tuple[float, int]:
    """(usage ratio, average usage) for plain per-pod values.

    Example: values 20000, 10000, 30000 against a target of 15000: average
    60000 / 3 = 20000, ratio 20000 / 15000 = 1.33.
    """
    usage = go_div(sum(values.values()), len(values))
    return usage / target_usage, usage
