"""Resetting a process's accepted connections, for the `abrupt-exit` fault.

A process that exits closes its sockets with a FIN, or a reset when unread data waits:
which one a client sees depends on timing. SO_LINGER with a zero timeout makes every
close a reset (RFC 793's ABORT), so the fault is the same on every run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Collection

_LINGER_ZERO = struct.pack("ii", 1, 0)


def reset_connections(local_ports: Collection[int]) -> int:
    """Arm every connected TCP socket of this process on one of `local_ports` to reset when
    it closes (listening sockets and outbound connections are left alone); returns how many."""
    armed = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=int(name))
        except (OSError, ValueError):
            continue  # not a socket, or gone
        try:
            if sock.type == socket.SOCK_STREAM and _is_accepted_on(sock, local_ports):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                armed += 1
        except OSError:
            pass
        finally:
            sock.detach()
    return armed


def _is_accepted_on(sock: socket.socket, local_ports: Collection[int]) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    with contextlib.suppress(OSError):
        sock.getpeername()  # a listening socket has no peer
        return int(sock.getsockname()[1]) in local_ports
    return False
