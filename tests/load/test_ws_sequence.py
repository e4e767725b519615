"""The WebSocket user's gap and duplicate counters, proven against a seeded tiny server.

The server (`seeded.py`) leaves seq 3 out, or pushes it twice, or neither. The real
Locust CLI runs the real locustfile against it; the counts come from Locust's own CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience.load.requests import read_timeline
from tests.load.locustrun import Stats, run_locustfile
from tests.load.seeded import serving


@pytest.fixture
def seeded_server(request: pytest.FixtureRequest) -> Iterator[str]:
    with serving(request.param) as url:
        yield url


def run_ws_locustfile(host: str, out: Path) -> Stats:
    """Two users pacing fast, six seconds."""
    fast = {"HF_WAIT_MIN": "0.05", "HF_WAIT_MAX": "0.1", "HF_TIMEOUT": "3"}
    return run_locustfile(host, out, fast)


@pytest.mark.parametrize(
    ("seeded_server", "gaps", "duplicates"),
    [
        pytest.param("healthy", False, False, id="healthy"),
        pytest.param("skip", True, False, id="skips-seq-3"),
        pytest.param("duplicate", False, True, id="repeats-seq-3"),
    ],
    indirect=["seeded_server"],
)
def test_the_ws_user_counts_gaps_and_duplicates(
    seeded_server: str, gaps: bool, duplicates: bool, tmp_path: Path
) -> None:
    stats = run_ws_locustfile(seeded_server, tmp_path)
    assert stats["WS fanout"]["requests"] >= 5, stats  # the server did push, and on time
    assert stats["WS ping"]["failures"] == 0, stats
    gap = stats.get("WS seq gap", {"failures": 0})["failures"]
    duplicate = stats.get("WS seq duplicate", {"failures": 0})["failures"]
    assert (gap > 0) is gaps, stats
    assert (duplicate > 0) is duplicates, stats
    assert gap <= 2 and duplicate <= 2, stats  # at most one per user's session
    timeline = read_timeline(tmp_path / "timeline.jsonl")
    missing = sum(r.length for r in timeline.records if r.name == "seq gap")
    assert missing == gap, "each gap skipped exactly one event"


@pytest.mark.parametrize(
    ("seeded_server", "gaps"),
    [
        pytest.param("restarts", False, id="replays-since"),
        pytest.param("restarts-from-head", True, id="resumes-from-head"),
    ],
    indirect=["seeded_server"],
)
def test_a_resume_that_skips_what_changed_while_away_is_a_gap(
    seeded_server: str, gaps: bool, tmp_path: Path
) -> None:
    """The session changes while the socket is away (the WS user writes it, as a user's
    other tab would), so a resume from the newest event skips a seq the next push shows."""
    stats = run_ws_locustfile(seeded_server, tmp_path)
    assert stats["WS disconnect"]["requests"] >= 3, stats  # the server closed sockets
    assert stats["WS disconnect"]["failures"] == 0, stats  # with 1001: graceful
    assert stats["WSRECONN reconnect"]["failures"] == 0, stats
    gap = stats.get("WS seq gap", {"failures": 0})["failures"]
    assert (gap > 0) is gaps, stats
