"""The AWS endpoint's server: moto behind the wire middleware, on a loopback thread.

One per process (moto keeps its resources in module-level state). `start()`
installs the hooks, serves, starts the FIS experiments' runner, and creates the
account's resources through the API itself, so what clients see was made the way
they would make it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from sandbox.aws import hooks
from sandbox.aws.effects import Effects
from sandbox.aws.fis_runner import FisRunner
from sandbox.aws.inventory import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, REGION
from sandbox.aws.wire import AwsWireMiddleware

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 10.0


class _QuietHandler(MotoRequestHandler):
    """Access lines go to the logger at debug level, not to stderr."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("%s %s", self.requestline, str(code))


class AwsEndpoint:
    """`AwsEndpoint(effects).start()` -> the URL for `AWS_ENDPOINT_URL`."""

    def __init__(self, effects: Effects, host: str = "127.0.0.1", port: int = 0) -> None:
        self._effects = effects
        self._host, self._port = host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._fis: FisRunner | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            return ""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        hooks.install(self._effects)
        hooks.reset_backends()
        app = AwsWireMiddleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-endpoint", daemon=True
        )
        self._thread.start()
        self._fis = FisRunner(self._effects, self.client)
        hooks.attach_fis(self._fis)
        self._fis.start()
        try:
            hooks.seed(self.client, self._effects)
        except BaseException:
            self.stop()
            raise
        log.info("AWS endpoint at %s", self.url)
        return self.url

    def client(self, service: str) -> Any:
        """A boto3 client of this endpoint (dummy credentials, no retries)."""
        return boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=DUMMY_ACCESS_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )

    def stop(self) -> None:
        if self._fis is not None:
            self._fis.stop()
            self._fis = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
        self._server = self._thread = None
        hooks.uninstall()
