"""Load: Locust as a subprocess, its request timeline, chaos windows, certification.

- `runner`       `LoadPlan` -> `LoadRun` (background Locust, fault marks, bounded stop)
- `requests`     the request timeline: the plugin's JSON lines read back, cut into windows
- `windows`      baseline / fault / recovery from the chaos marks (pure)
- `profile`      certification profiles (YAML) and their schema
- `certify`      `resilience certify`
- `certificate`  the certificate as JSON and self-contained HTML
- `environment`  the target as the Kubernetes API shows it, the tools' versions
- `session`      `LocustLoad`, the suites' `LoadSession`: a profile's load around one test

SLO evaluation itself is `resilience.slo.objectives` (pure). Nothing here imports Locust:
`import locust` monkey-patches a process with gevent (../shared/reference/locust.md §8).
"""
