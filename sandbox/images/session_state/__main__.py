"""`python -m sandbox.images.session_state [--fault NAME]`: exit 2 on a bad setting."""

from __future__ import annotations

import asyncio
import os
import sys

from sandbox.images.session_state import fdlimit, logs
from sandbox.images.session_state.app import serve
from sandbox.images.session_state.config import ConfigError, parse_settings, redact


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = parse_settings(os.environ, args)
    except ConfigError as error:
        secrets = frozenset(v for k, v in os.environ.items() if k.startswith("SECRET_") and v)
        print(f"session-state: {redact(str(error), secrets)}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.secrets)
    fdlimit.raise_nofile()  # one descriptor per WebSocket: see fdlimit's arithmetic
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
