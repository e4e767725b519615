"""The process of the kubelet DNS tests' container: what it sees at /etc/resolv.conf and what
`LOOKUP` resolves to through the C library's resolver (as any client in a pod would)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def main() -> None:
    print("RESOLV " + Path("/etc/resolv.conf").read_text().replace("\n", "|"), flush=True)
    name = os.environ.get("LOOKUP", "")
    if not name:
        return
    try:
        infos = socket.getaddrinfo(name, 5432, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as error:
        print(f"GAIERROR {error}", flush=True)
        return
    print("ADDR " + ",".join(sorted({str(info[4][0]) for info in infos})), flush=True)


if __name__ == "__main__":
    main()
