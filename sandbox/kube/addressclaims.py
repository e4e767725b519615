"""Claims on loopback addresses shared by every process of this user on the machine.

Several sandboxes (or test runs) may share one machine, and an address bound or named
in the pod network's rules must be one sandbox's alone: pod IPs
(`sandbox.kube.kubelet.ipam`) and Service ClusterIPs (`sandbox.kube.clusterips`) are
claimed with an exclusive `flock` on `<lock_dir>/<address>`, held while allocated and
dropped by the kernel if the process dies. An address some other process already listens
on (a stray from a killed run) cannot be claimed either.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from pathlib import Path

DEFAULT_LOCK_DIR = Path(tempfile.gettempdir()) / f"sandbox-ipam-{os.getuid()}"


def listening_addresses(table: Path = Path("/proc/net/tcp")) -> set[str]:
    """IPv4 addresses with a socket in LISTEN state (`/proc/net/tcp`, state 0A)."""
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return set()
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            found.add(socket.inet_ntoa(bytes.fromhex(fields[1].split(":")[0])[::-1]))
    return found


class AddressClaims:
    """Claims on addresses shared by every process of this user on the machine."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}  # address -> locked file descriptor

    def claim(self, address: str) -> bool:
        if address in listening_addresses():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / address, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[address] = fd
        return True

    def release(self, address: str) -> None:
        fd = self._held.pop(address, None)
        if fd is not None:
            os.close(fd)  # closing drops the lock
