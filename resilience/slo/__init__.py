"""Service levels: what the service must keep, each check as a pure function, one result type.

A new SLO check goes here, as a pure function over plain data that returns a
`result.CheckResult`; the code that observes (Locust, the witness traffic, the
watch timeline) only gathers the data it judges.

- `result`       the one result type: `CheckResult` of `Violation`s, each naming the
                 violated limit, its value, the observed value, when, and a message
- `objectives`   the load profiles' SLOs per window (latency, error rate, failures,
                 events, throughput): `Verdict` per SLO, `slo_check` as one result
- `error_budget` the witness traffic's error budget, read from a profile's SLO
- `writes`       acknowledged writes: none lost, the longest gap around a fault
- `alert_rules`  the Prometheus rules of deploy/monitoring/rules/, typed: the alerts'
                 thresholds and `for:` durations, never typed into a test
- `latency`      the dependency-latency hypothesis: within the SLO, or slower by
                 exactly the injected delay per round trip

The checkers over the watch timeline (rollout limits, disruption budget, HPA,
probes, time to recover) live beside the states they read, in
`resilience.observe`, and return the same `CheckResult`.
"""
