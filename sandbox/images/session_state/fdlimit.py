"""File descriptors: raise the soft RLIMIT_NOFILE to the hard one at start, as Go does.

Every WebSocket is one descriptor in the service, and a pod must hold its share of the
sandbox's 10,000 sessions at the worst moment, when one of the three pods is gone and
its sockets reconnected to the other two (sandbox/infra/socket_capacity.py,
`pod_sockets`): 10,000 / 2 = 5,000 sockets, plus the ingress's idle keep-alive
connections to it (320 per upstream per nginx worker, 2 upstreams x 2 workers = 1,280),
the PostgreSQL pool (DB_POOL_SIZE, at most 100), Redis (a pool and the pub/sub
connection, tens) and the interpreter's own (listeners, logs, epoll, about 30): some
6,500 descriptors, well within this machine's 20,000 per process.

A process inherits its soft limit, and many init systems hand out a low one (systemd's
default `LimitNOFILE=1024:524288`, kept low for programs that still use select(2) and
its fd_set of 1,024). A service on asyncio never uses select (the selector is epoll),
so the low soft limit only refuses sockets: from about the 1,000th, accept fails with
EMFILE, aiohttp logs it and leaves the connection in the backlog, and the ingress times
out connecting (a 504). Go raises the soft limit to the hard one at start for the same
reason (go/src/os/rlimit.go, since Go 1.19); the reference service does the same.

    >>> nofile_target(1024, 524288), nofile_target(20000, 20000)
    (524288, 20000)
    >>> nofile_target(1024, resource.RLIM_INFINITY)
    1048576
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

log = logging.getLogger("session_state")
# The kernel refuses a limit above fs.nr_open, whose default this is; an infinite hard
# limit cannot be the soft one.
NR_OPEN_DEFAULT = 1_048_576
NR_OPEN = Path("/proc/sys/fs/nr_open")


def nofile_target(soft: int, hard: int, nr_open: int = NR_OPEN_DEFAULT) -> int:
    """The soft limit to set: the hard one (fs.nr_open when that is infinite), never lower."""
    ceiling = nr_open if hard == resource.RLIM_INFINITY else hard
    return max(soft, ceiling) if soft != resource.RLIM_INFINITY else soft


def raise_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE as `nofile_target` says; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        nr_open = int(NR_OPEN.read_text().strip())
    except (OSError, ValueError):
        nr_open = NR_OPEN_DEFAULT
    target = nofile_target(soft, hard, nr_open)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as error:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, error)
            return soft
    return target
