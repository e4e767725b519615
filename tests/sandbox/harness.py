"""An API server over a store on a private event loop thread, for tests that use
synchronous clients (the loop: `sandbox.kube.embedding.LoopThread`)."""

from __future__ import annotations

import http.client
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kubernetes import client, config

from sandbox.kube.apiserver import ApiServer, ApiServerConfig
from sandbox.kube.embedding import LoopThread, https_connection
from sandbox.kube.kubeconfig import write_kubeconfig
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.store import Store
from tests.cli import run_kubectl

T = TypeVar("T")


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
        return run_kubectl(*args, env=env, timeout=timeout, check=check)

    def close(self) -> None:
        self.thread.run(self.server.stop())
        self.thread.close()
