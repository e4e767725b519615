"""`make unit`: pytest as two processes side by side, because the run is mostly waiting.

The tests on the full sandbox hold its fixed loopback addresses (127.0.3.x), so they run
one at a time, in one process (`--part full-sandbox`). Everything else (pure tests, and
live tests on control planes of their own on free ports) runs beside them in a second
process (`--part rest`). The first streams to the terminal; the second's output is kept
in a file and printed after it, so the two reports do not interleave.

Usage: python tests/run_parts.py [pytest arguments...]. Exits 0 when each part passed or
selected no test (pytest's 5), else the first failing part's code. Ctrl-C and SIGTERM
reach both pytest processes (so their fixtures tear down) and are waited for.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

# Fixtures that stand for a whole sandbox on its fixed loopback addresses (127.0.3.x), of
# which a machine runs one at a time: the suites' target and the live tests' sandboxes
# (each started by tests/live.py's `started`).
FULL_SANDBOX_FIXTURES = frozenset(
    {"target", "live", "live_sandbox", "full_sandbox", "chaos_sandbox", "twin_sandbox"}
)
FULL_SANDBOX_MARKERS = frozenset({"full_sandbox", "sandbox_with"})
# `pytest --part`: all tests, only those on the full sandbox, or only the others, so that
# `make test` can run the two parts side by side.
TEST_PARTS = ("all", "full-sandbox", "rest")


def needs_full_sandbox(markers: Iterable[str], fixtures: Iterable[str]) -> bool:
    """Whether a test runs on the full sandbox: it says so with a marker (`full_sandbox`, or
    `sandbox_with` for optional parts) or uses one of the fixtures that start it."""
    return bool(FULL_SANDBOX_MARKERS.intersection(markers)) or bool(
        FULL_SANDBOX_FIXTURES.intersection(fixtures)
    )


def in_part(part: str, markers: Iterable[str], fixtures: Iterable[str]) -> bool:
    """Whether a test with these markers and fixtures belongs to `part` (one of TEST_PARTS)."""
    if part == "all":
        return True
    return needs_full_sandbox(markers, fixtures) == (part == "full-sandbox")


NO_TESTS = 5
# Bounded: pytest-timeout bounds each test, this bounds the whole part.
PART_TIMEOUT_SECONDS = 75 * 60
STOP_TIMEOUT_SECONDS = 120


def overall(codes: list[int]) -> int:
    """The exit code of the whole run: 0 when every part passed or had nothing to run.

    >>> overall([0, 5]), overall([1, 0]), overall([0, 2])
    (0, 1, 2)
    """
    failed = [code for code in codes if code not in (0, NO_TESTS)]
    return failed[0] if failed else 0


def bounded_wait(part: subprocess.Popen[bytes]) -> int:
    """The part's exit code; past its time it is stopped (SIGTERM, then SIGKILL)."""
    try:
        return part.wait(timeout=PART_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"a part ran past {PART_TIMEOUT_SECONDS} s: stopping it", file=sys.stderr)
        part.terminate()
        try:
            return part.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            part.kill()
            return part.wait()


def main(arguments: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", *arguments]
    with tempfile.TemporaryDirectory(prefix="hf-test-parts-") as scratch:
        rest_log = Path(scratch) / "rest.log"
        with rest_log.open("w") as sink:
            # Own process groups: a terminal's Ctrl-C reaches them once, through `forward`
            # (a second SIGINT would cut pytest's fixture teardown short).
            rest = subprocess.Popen(
                [*pytest, "--part", "rest"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            full = subprocess.Popen([*pytest, "--part", "full-sandbox"], start_new_session=True)
            parts = (full, rest)

            def forward(signum: int, _frame: FrameType | None) -> None:
                for part in parts:
                    if part.poll() is None:
                        part.send_signal(signum)

            signal.signal(signal.SIGINT, forward)
            signal.signal(signal.SIGTERM, forward)
            codes = []
            for part in parts:
                codes.append(bounded_wait(part))
        print("\n==== the tests that ran beside the full sandbox (--part rest) ====", flush=True)
        sys.stdout.write(rest_log.read_text(errors="replace"))
        sys.stdout.flush()
    code = overall(codes)
    print(f"==== full sandbox part: exit {codes[0]}; the rest: exit {codes[1]} ====", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
