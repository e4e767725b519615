"""Whose pod network is alive: one `flock` per sandbox, held while its pod network runs.

A sandbox killed with SIGKILL leaves its nft table and iptables chain behind, while
the kernel drops its address claims (`sandbox.kube.kubelet.ipam`) at once. Its rules
name those addresses (a NetworkPolicy's deny, a chaos fault's drop), and another
sandbox may take them now: its pods would inherit a dead sandbox's policy. So every
pod network removes the tables and chains of the sandboxes that are gone before it
applies its own (`reap`), as a CNI plugin garbage-collects the endpoints of
containers that no longer exist.

The lock lives in a file per sandbox id under `LOCK_DIR`; a table whose lock can be
taken, or that has no lock file, has no living owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from sandbox.cni.ruleset import CHAIN_PREFIX, TABLE_PREFIX

log = logging.getLogger(__name__)
LOCK_DIR = Path(tempfile.gettempdir()) / f"sandbox-podnet-{os.getuid()}"
_SANDBOX_ID = r"([0-9a-f]{12})"
_TABLE = re.compile(rf"^table inet {re.escape(TABLE_PREFIX)}{_SANDBOX_ID}\s*$", re.MULTILINE)
_CHAIN = re.compile(rf"^-N {re.escape(CHAIN_PREFIX)}{_SANDBOX_ID}\s*$", re.MULTILINE)


class OwnerLockError(OSError):
    """Another living process already runs this sandbox's pod network."""


def sandbox_ids(nft_tables: str = "", iptables_rules: str = "") -> set[str]:
    """The sandbox ids named by `nft list tables` and `iptables -t mangle -S` output.

    >>> sorted(sandbox_ids("table ip filter\\ntable inet hfnet_0123456789ab\\n",
    ...                    "-N HFNET-ba9876543210\\n-A OUTPUT -j HFNET-ba9876543210\\n"))
    ['0123456789ab', 'ba9876543210']
    """
    return set(_TABLE.findall(nft_tables)) | set(_CHAIN.findall(iptables_rules))


def orphans(found: Iterable[str], own: str, alive: Callable[[str], bool]) -> list[str]:
    """The ids whose owner is gone, this sandbox's own never among them.

    >>> orphans(["a", "b", "own"], "own", lambda i: i == "a")
    ['b']
    """
    return sorted(i for i in set(found) if i != own and not alive(i))


class OwnerLock:
    """This sandbox's claim on its pod network, dropped by the kernel if the process dies."""

    def __init__(self, sandbox_id: str, directory: Path = LOCK_DIR) -> None:
        self.path = directory / f"{sandbox_id}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OwnerLockError(
                f"another process runs this sandbox's pod network ({self.path})"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def owner_alive(sandbox_id: str, directory: Path = LOCK_DIR) -> bool:
    """Whether a living process holds the sandbox's lock (no lock file: nobody does)."""
    try:
        fd = os.open(directory / f"{sandbox_id}.lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def forget(sandbox_id: str, directory: Path = LOCK_DIR) -> None:
    """Remove a dead sandbox's lock file (its rules are gone)."""
    with contextlib.suppress(OSError):
        (directory / f"{sandbox_id}.lock").unlink()
