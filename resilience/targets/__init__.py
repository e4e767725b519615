"""The targets: what the suite runs against, and how each entry point reaches it.

- `cluster`  a `Target` read from a kubeconfig (where, never credentials), checked
             reachable within a bound and against the safety interlocks
- `live`     `LiveTarget`, what a suite test holds: the clients, the Deployment and
             the ingress URL; its steady state, snapshot and restore
- `sandbox`  the sandbox as the suites' default target, started and stopped through
             `resilience sandbox` (subprocesses, never an import of `sandbox`)
- `gameday`  where a game day runs: the sandbox (started when none runs) or a context

Everything downstream reads only the exports (KUBECONFIG, the ingress URL, the AWS
endpoint): one code path for the sandbox and a real cluster.
"""
