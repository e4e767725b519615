"""How many Locust processes a socket load needs: the `processes` of a socket profile.

A WebSocket user holds one socket, a descriptor of its Locust process, for its whole
life; the WebSocket users of a process share one REST pool of HF_WS_REST_CONNECTIONS
connections (loadtests/harmonyflow/users.py). Two things bound the sockets of one
process:

- descriptors: sockets + the REST pool + the interpreter's own (RESERVE) must stay
  within the per-process limit (20,000 on the machines the sandbox runs on);
- its event loop: bench/loadgen.py measured one process holding 10,000 subscribed,
  idle sockets with a p99 ping under 1 s (MEASURED_SOCKETS). In a storm a third of
  them reconnect at once, each a REST write, a handshake and a resubscription on the
  same loop, and a loop that is late makes every socket's measured times late: the
  load generator would be measured, not the service. PROCESS_SOCKETS keeps each
  process at half what it can hold idle, leaving the other half of its loop to the
  storm.

    10,000 sessions: loop        ceil(10,000 / 5,000)                     = 2
                     descriptors ceil(10,000 / (20,000 - 1,000 - 200))    = 1
                     processes   max(2, 1)                                = 2

    >>> locust_processes(10_000)
    2
"""

from __future__ import annotations

import math

DESCRIPTOR_LIMIT = 20_000
MEASURED_SOCKETS = 10_000  # bench/loadgen.py: sockets one process holds, p99 ping < 1 s
PROCESS_SOCKETS = MEASURED_SOCKETS // 2
REST_POOL = 1_000  # HF_WS_REST_CONNECTIONS' default
RESERVE = 200  # the interpreter, gevent's hub, logs, the link to the master


def locust_processes(
    sessions: int,
    rest_pool: int = REST_POOL,
    descriptor_limit: int = DESCRIPTOR_LIMIT,
    process_sockets: int = PROCESS_SOCKETS,
) -> int:
    """The fewest processes that hold `sessions` sockets within both bounds (docstring)."""
    if sessions < 1:
        raise ValueError(f"a socket load needs at least one session, got {sessions}")
    per_process_room = descriptor_limit - rest_pool - RESERVE
    if per_process_room < 1:
        raise ValueError(
            f"a descriptor limit of {descriptor_limit} leaves no room for sockets beside "
            f"a REST pool of {rest_pool}"
        )
    by_descriptors = math.ceil(sessions / per_process_room)
    by_loop = math.ceil(sessions / process_sockets)
    return max(1, by_descriptors, by_loop)
