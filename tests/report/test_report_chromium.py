"""The report opened in headless Chromium (Debian's `chromium`): it renders its charts,
logs nothing to the console, and fetches nothing (its CSP would log any attempt)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resilience.report.build import build_report
from tests.report.builders import write_run

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed (make setup installs Debian's chromium)")
    return found


def open_in_chromium(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_the_report_renders_its_charts_with_no_console_message(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "reports")
    page = build_report(run_dir, secrets=[]).html
    done = open_in_chromium(page, tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    rendered = re.search(r'data-charts-rendered="(\d+)"', done.stdout)
    assert rendered is not None, "the page's script did not run"
    assert rendered.group(1) == "1", "the timeline chart did not render"
    assert done.stdout.count("<path") > 10
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console


def test_a_page_that_fetches_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a page reaching for the network logs a CSP violation."""
    run_dir = write_run(tmp_path / "reports")
    page = build_report(run_dir, secrets=[]).html
    page.write_text(
        page.read_text().replace("</body>", "<img src='http://127.0.0.1:9/x.png'></body>")
    )
    done = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert any(
        ":CONSOLE" in line and "Content Security Policy" in line
        for line in done.stderr.splitlines()
    )


def test_a_screenshot_of_the_report(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "reports")
    page = build_report(run_dir, secrets=[]).html
    shot = tmp_path / "shot.png"
    done = open_in_chromium(
        page,
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=1200,900",
        f"--screenshot={shot}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
