"""Game days: a plan of experiments run in order under one continuous load.

- `plan`: the plan file (YAML), validated into frozen dataclasses (pure);
- `steady`: whether the cluster is steady enough for the next step (pure);
- `steps`: one experiment as a `resilience chaos run` subprocess, signals forwarded;
- `target`: the sandbox (started when none runs) or a kube context;
- `progress`: live progress in the terminal (rich on a TTY, plain lines otherwise);
- `run`: the game day itself; `cli`: `resilience gameday`.

The report (`resilience.report`) is built from what a run leaves in its directory.
"""
