"""The process behind each public-image stand-in: pause, nginx, or the safe runner.

Started by the kubelet as `python -I -u -c <bootstrap> <repo> sandbox.images.standins
<kind> <root> -- <argv...>` (see `registry.ImageSpec.argv`): `-I` keeps the pod's
environment free of the sandbox's PYTHONPATH, so `env` in a busybox pod prints
what the pod was given. `<argv>` is the container's command and args resolved as
a container runtime does (`registry.container_argv`).

- `pause`: waits for SIGTERM/SIGINT, says so on stderr and exits 0, as
  registry.k8s.io/pause does.
- `nginx`: with no command (or `nginx ...`, `/docker-entrypoint.sh ...`) serves the
  nginx welcome page on the pod IP, port 80 (`sandbox.images.webserver`); any
  other command goes to the safe runner, as a command overriding the
  entrypoint would.
- `shell` (busybox, python): the argv through `sandbox.images.shell`.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

from sandbox.images import shell, webserver

NGINX_ENTRYPOINTS = frozenset({"nginx", "/docker-entrypoint.sh", "/usr/sbin/nginx"})


def _pause() -> int:
    def down(signo: int, _frame: FrameType | None) -> None:
        sys.stderr.write(f"Shutting down, got signal: {signal.Signals(signo).name}\n")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, down)
    signal.signal(signal.SIGINT, down)
    while True:
        signal.pause()


def main(argv: list[str]) -> int:
    kind, root, separator, *command = argv
    if separator != "--":
        raise SystemExit(f"usage: standins KIND ROOT -- ARGV... (got {argv!r})")
    if kind == "pause":
        return _pause()
    if kind == "nginx" and (not command or command[0] in NGINX_ENTRYPOINTS):
        return webserver.serve_forever()
    return shell.run_container(command, Path(root) if root else None)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
