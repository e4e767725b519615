"""`resilience chaos run` and `resilience gameday` refuse a run the credentials cannot
make: one line, exit 2, before anything starts (no load, no watch, no run directory)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import REPO_ROOT
from tests.cli import run_resilience
from tests.preflight.fake_authorization import FakeAuthorization, write_kubeconfig


@pytest.fixture
def fake() -> Iterator[FakeAuthorization]:
    server = FakeAuthorization()
    yield server
    server.close()


def resilience(
    tmp_path: Path, fake: FakeAuthorization, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", fake.url)),
        "HARMONYFLOW_INGRESS_URL": "http://127.0.0.1:9",
        "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl"),
        "HARMONYFLOW_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return run_resilience(*args, env=env)


def test_chaos_run_refuses_in_one_line_with_exit_2(tmp_path: Path, fake: FakeAuthorization) -> None:
    fake.denied = {("create", "pods/eviction", "harmonyflow"), ("patch", "nodes", "")}
    done = resilience(
        tmp_path, fake, "chaos", "run", str(REPO_ROOT / "experiments" / "az-drain.yaml")
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == (
        "resilience: error: preflight: cannot patch nodes;"
        " cannot create pods/eviction in harmonyflow\n"
    )
    assert not (tmp_path / "recovery.jsonl").exists()  # nothing journaled: nothing ran
    assert len(fake.reviews) >= 6


def test_a_game_day_refuses_before_the_load_and_the_watches(
    tmp_path: Path, fake: FakeAuthorization
) -> None:
    fake.denied = {("get", "horizontalpodautoscalers", "harmonyflow")}
    reports = tmp_path / "reports"
    done = resilience(
        tmp_path,
        fake,
        "gameday",
        "--plain",
        "--kube-context",
        "dev",
        "--reports-dir",
        str(reports),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.endswith(
        "resilience: error: preflight: cannot get horizontalpodautoscalers in harmonyflow\n"
    )
    assert done.stderr.count("\n") == 1, done.stderr
    assert not [p for p in reports.iterdir() if p.is_dir()]  # no run directory
