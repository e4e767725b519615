"""How many sockets the sandbox carries, and the nginx ingress sized for them.

The sandbox carries `DESIGN_SESSIONS` concurrent WebSocket sessions (issue 20: 10,000
through a pod kill) on a machine that allows `DESCRIPTOR_LIMIT` descriptors per
process (`ulimit -Hn` here: 20,000). Every number below is derived from those two and
from what the load sends besides the sockets; the tests keep the arithmetic true.

The ingress (`ingress_sizing`). Each proxied WebSocket is two connections in nginx,
the client's and the one to the pod, and each is a descriptor of the worker that
accepted the client. nginx's `worker_connections` counts both (and its idle keep-alive
connections to the pods), per worker; `worker_rlimit_nofile` raises each worker's
descriptor limit to hold them. With the design load:

    client connections  = 10,000 sockets + 2,000 REST (REST_CLIENTS)       = 12,000
    nginx connections   = 2 x 12,000                                        = 24,000
    with 25 % headroom  = 24,000 x 1.25 (HEADROOM)                          = 30,000
    usable per worker   = 20,000 - 64 (WORKER_RESERVE) - 640 (keep-alive)  = 19,296
    worker_processes    = ceil(30,000 / 19,296)                             = 2
    worker_connections  = ceil(30,000 / 2) + 640                            = 15,640
    worker_rlimit_nofile= 15,640 + 64                                        = 15,704  (<= 20,000)

One worker could not hold them (24,000 > 20,000): the workers are what spreads the
load over processes, so they must share it. `listen ... reuseport` gives each worker
a listening socket of its own and the kernel picks one per connection by a hash of its
addresses, whatever each worker is busy with (ingress-nginx's `reuse-port: true`
default). Measured (tests/sandbox/infra/test_nginx_sockets.py): 3,000 sockets through two
workers split 3,102 / 2,898 connections; nginx's EPOLLEXCLUSIVE accept split them
evenly there too without reuseport, on idle workers. The headroom covers the hash's
unevenness (12,000 clients over two workers: a standard deviation of about 55) with a
wide margin, and REST connections that come and go. The listen backlog is
`LISTEN_BACKLOG`, as ingress-nginx sets it (`backlog` = net.core.somaxconn), so that a
reconnect storm queues instead of losing SYNs.

The pods (`pod_sockets`): the worst moment for a pod is a pod kill, when the sockets of
the killed one reconnect to the others before its replacement is Ready:
ceil(10,000 / (3 - 1)) = 5,000 sockets; sandbox/images/session_state/fdlimit.py adds
the rest of what a pod holds (about 6,500 descriptors) and raises its limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DESIGN_SESSIONS = 10_000  # issue 20: the sandbox carries 10,000 WebSocket sessions
DESCRIPTOR_LIMIT = 20_000  # descriptors per process on the machines the sandbox runs on
# The REST connections the load opens at most besides its sockets: the WebSocket users
# of a Locust process share HF_WS_REST_CONNECTIONS (1,000) of them, and the storm's load
# runs 2 processes (resilience/load/sockets.py `locust_processes`).
REST_CLIENTS = 2_000
CONNECTIONS_PER_PROXIED_SOCKET = 2  # the client's and the one to the pod
HEADROOM = 1.25
# Descriptors of a worker that are no connection: its listening socket(s), the error
# and access logs, epoll, the channel to the master, temp files of buffered bodies.
WORKER_RESERVE = 64
# Idle keep-alive connections one worker may cache per upstream (nginx_config's
# UPSTREAM_KEEPALIVE_CONNECTIONS) and the upstreams the service has (8080 and 8443).
KEEPALIVE_PER_UPSTREAM = 320
UPSTREAMS = 2
LISTEN_BACKLOG = 4096  # net.core.somaxconn's default since Linux 5.4


class CapacityError(ValueError):
    """The load cannot be carried within the descriptor limit as asked."""


@dataclass(frozen=True)
class IngressSizing:
    """nginx's process and connection settings for a socket load."""

    worker_processes: int
    worker_connections: int
    worker_rlimit_nofile: int
    listen_backlog: int = LISTEN_BACKLOG


def ingress_sizing(
    sessions: int = DESIGN_SESSIONS,
    rest_clients: int = REST_CLIENTS,
    descriptor_limit: int = DESCRIPTOR_LIMIT,
) -> IngressSizing:
    """The fewest nginx workers that hold `sessions` proxied sockets and `rest_clients`
    REST connections with HEADROOM, each within `descriptor_limit` (worked example in
    the module docstring).

    >>> ingress_sizing()
    IngressSizing(worker_processes=2, worker_connections=15640, worker_rlimit_nofile=15704, \
listen_backlog=4096)
    """
    if sessions < 0 or rest_clients < 0:
        raise CapacityError(f"negative load: {sessions} sessions, {rest_clients} REST clients")
    keepalive = KEEPALIVE_PER_UPSTREAM * UPSTREAMS
    usable = descriptor_limit - WORKER_RESERVE - keepalive
    if usable <= 0:
        raise CapacityError(
            f"a descriptor limit of {descriptor_limit} leaves no room for connections "
            f"(each worker reserves {WORKER_RESERVE} + {keepalive} keep-alive)"
        )
    needed = math.ceil(CONNECTIONS_PER_PROXIED_SOCKET * (sessions + rest_clients) * HEADROOM)
    workers = max(1, math.ceil(needed / usable))
    connections = math.ceil(needed / workers) + keepalive
    return IngressSizing(workers, connections, connections + WORKER_RESERVE)


def pod_sockets(sessions: int, replicas: int, lost: int = 1) -> int:
    """Sockets one pod holds when `lost` of `replicas` pods are gone and their sockets
    reconnected evenly to the others.

    >>> pod_sockets(10_000, 3), pod_sockets(10_000, 3, lost=0)
    (5000, 3334)
    """
    left = replicas - lost
    if left < 1:
        raise CapacityError(f"{replicas} replicas with {lost} lost leave none to hold sockets")
    return math.ceil(sessions / left)
