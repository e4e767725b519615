"""Run sandbox pieces on a private event loop thread, for tests that use synchronous clients.

The Python Kubernetes client and kubectl block; the sandbox is asyncio. The
harness owns one loop on a thread, and `on_loop` runs a function there, where
the store may be touched safely.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import os
import subprocess
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from kubernetes import client, config

from sandbox.kube import servingcert
from sandbox.kube.apiserver import ApiServer, ApiServerConfig
from sandbox.kube.kubeconfig import ApiAccess, write_kubeconfig
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.store import Store

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


class ApiHarness:
    """A store behind a real API server on loopback, with a kubeconfig for clients."""

    def __init__(self, directory: Path, watch_timeout_seconds: float = 1800.0) -> None:
        self.directory = directory
        self.thread = LoopThread()
        self.metrics = MetricsStore()
        self.store: Store = self.thread.on_loop(Store)
        self.server = ApiServer(
            self.store,
            self.metrics,
            ApiServerConfig(log_root=directory, watch_timeout_seconds=watch_timeout_seconds),
        )
        self.url = self.thread.run(self.server.start())
        self.kubeconfig = write_kubeconfig(directory / "kubeconfig", self.server.access, "default")
        for namespace in ("default", "kube-system", "harmonyflow"):
            self.on_loop(
                lambda n=namespace: self.store.create("namespaces", {"metadata": {"name": n}})
            )

    def on_loop(self, function: Callable[[], T]) -> T:
        return self.thread.on_loop(function)

    def api_client(self) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))
        return api

    def connection(self, timeout: float = 10) -> http.client.HTTPSConnection:
        """A raw HTTPS connection that trusts the server's CA (send `auth_headers()` too)."""
        return https_connection(self.server.access, timeout)

    def auth_headers(self, token: str | None = None) -> dict[str, str]:
        """The kubeconfig user's bearer token (or another), as kubectl sends it."""
        return {"Authorization": f"Bearer {self.server.admin_token if token is None else token}"}

    def kubectl(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.directory / "kubecache"),
        }
        completed = subprocess.run(
            ["kubectl", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr}")
        return completed

    def close(self) -> None:
        self.thread.run(self.server.stop())
        self.thread.close()
