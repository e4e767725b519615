"""Logging with secrets removed: every formatted line (and traceback) passes `redact`."""

from __future__ import annotations

import logging
import sys

from sandbox.images.session_state.config import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: frozenset[str]) -> None:
        super().__init__(FORMAT)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def configure(level: int, secrets: frozenset[str]) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(RedactingFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is one line per request at INFO; keep it at the chosen level.
    logging.getLogger("aiohttp.access").setLevel(level)
