"""Time from `resilience sandbox up` to the Deployment Available, on this machine.

Baseline, measured in the same run: starting the interpreter and importing
the sandbox (what every `up` pays before it does any work). Printed, never
asserted; the target is 30 s or less with PostgreSQL, Redis and nginx
included (15 s for the control plane alone).

    .venv/bin/python bench/sandbox_boot.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 30.0  # backing services included (the control plane alone: 15)


def timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    baseline, boots = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="hf-bench-") as scratch:
            env = {**os.environ, "HARMONYFLOW_SANDBOX_DIR": scratch}
            baseline.append(timed([sys.executable, "-c", "import sandbox.daemon"], env))
            cli = [sys.executable, "-m", "resilience.cli", "sandbox"]
            try:
                boots.append(timed([*cli, "up"], env))
            finally:
                subprocess.run(
                    [*cli, "down"], cwd=REPO, env=env, check=False, capture_output=True, timeout=120
                )
    base, boot = statistics.median(baseline), statistics.median(boots)
    print(f"baseline (interpreter + imports): median {base:.2f}s over {runs} runs")
    print(
        f"sandbox up -> Available:          median {boot:.2f}s "
        f"(min {min(boots):.2f}s, max {max(boots):.2f}s)"
    )
    print(
        f"ratio up / baseline: {boot / base:.1f}x; target {TARGET_SECONDS:.0f}s: "
        f"{'met' if boot <= TARGET_SECONDS else 'missed'}"
    )


if __name__ == "__main__":
    main()
