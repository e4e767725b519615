"""Driving the asyncio sandbox from synchronous code: the tests and the benchmarks.

The Python Kubernetes client, kubectl and `http.client` block; the sandbox is asyncio.
`LoopThread` owns one event loop on a daemon thread, and `on_loop` runs a function
there, where the store may be touched safely. `https_connection` is a raw client of the
API server that trusts the cluster CA, as the kubeconfig does. `sandbox serve` never
needs either: it runs its loop on the main thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlparse

from sandbox.kube import servingcert
from sandbox.kube.kubeconfig import ApiAccess

T = TypeVar("T")


def https_connection(access: ApiAccess, timeout: float = 10) -> http.client.HTTPSConnection:
    """An HTTPS connection to an API server, verifying it with the cluster CA."""
    url = urlparse(access.url)
    return http.client.HTTPSConnection(
        url.hostname or "127.0.0.1",
        url.port,
        timeout=timeout,
        context=servingcert.client_context(access.ca_pem),
    )


class LoopThread:
    """An event loop running on its own thread until `close`, which cancels its tasks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def on_loop(self, function: Callable[[], T], timeout: float = 30) -> T:
        async def call() -> T:
            return function()

        return self.run(call(), timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.run(cancel_all(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
