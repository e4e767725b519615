"""Whose pod network is alive: a sandbox's lock, held while it runs and dropped with it."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cni import ownership
from sandbox.cni.ownership import OwnerLock, OwnerLockError, owner_alive


def test_doctests() -> None:
    assert doctest.testmod(ownership).failed == 0


def test_a_held_lock_is_alive_and_a_released_one_is_gone(tmp_path: Path) -> None:
    lock = OwnerLock("0123456789ab", tmp_path)
    assert not owner_alive("0123456789ab", tmp_path)  # no lock file: nobody
    lock.acquire()
    assert owner_alive("0123456789ab", tmp_path)
    with pytest.raises(OwnerLockError, match="another process runs"):
        OwnerLock("0123456789ab", tmp_path).acquire()
    lock.release()
    assert not owner_alive("0123456789ab", tmp_path)
    assert not (tmp_path / "0123456789ab.lock").exists()


def test_a_killed_owner_leaves_a_file_whose_lock_is_free(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: the file stays, and the kernel has dropped the lock."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from sandbox.cni.ownership import OwnerLock; "
            f"OwnerLock('0123456789ab', Path({str(tmp_path)!r})).acquire(); "
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert owner_alive("0123456789ab", tmp_path)
        holder.kill()
        holder.wait(10)
        assert (tmp_path / "0123456789ab.lock").exists()
        assert not owner_alive("0123456789ab", tmp_path)
    finally:
        holder.kill()
        holder.wait(10)
