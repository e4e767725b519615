"""What a failed database or cache host looks like on the wire: silence, or resets.

A host that fails does not say goodbye. Its peers' packets go unanswered: an
established connection hangs until the client's own timeout (TCP retransmits
for about 15 minutes with Linux's default `tcp_retries2`), and a new connection
times out on its SYN instead of being refused. That is what exercises a
client's connect, query and pool timeouts, which a polite FIN or an instant
"connection refused" never does.

The sandbox makes one loopback address behave like that with nftables: one
table, `inet harmonyflow_sandbox`, whose output chain drops every packet to or
from the addresses in its `silenced` set (loopback traffic passes the output
hook in both directions, so one chain covers client and server). `restore()`
takes an address out: packets flow again, and a stale connection then meets
the kernel's RST, as it would meet a rebooted host.

The other behaviour, chosen per fault, is an immediate reset:
`reset_connections()` aborts the server side of every TCP connection on an
address (`ss --kill`, the kernel's SOCK_DESTROY), which sends the client a RST.

The table is the sandbox's alone and is deleted at start and stop (and by
`resilience sandbox down` after a crash), so no rule outlives the sandbox.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import subprocess
from dataclasses import dataclass

from sandbox.infra.supervisor import InfraError

log = logging.getLogger(__name__)

TABLE = "harmonyflow_sandbox"
SET = "silenced"
COMMAND_TIMEOUT_SECONDS = 10.0


class HostFaultError(InfraError):
    """nft or ss failed (missing, or the kernel refused): the fault cannot be made."""


def render_table(table: str = TABLE) -> str:
    """The nft script that (re)creates the table empty; run with `nft -f -`.

    `add` then `delete` makes it idempotent: a table left by a crashed sandbox
    is replaced, not stacked.

    >>> print(render_table("t"))  # doctest: +NORMALIZE_WHITESPACE
    add table inet t
    delete table inet t
    table inet t {
      set silenced { type ipv4_addr; }
      chain output {
        type filter hook output priority filter; policy accept;
        ip daddr @silenced drop
        ip saddr @silenced drop
      }
    }
    """
    return "\n".join(
        [
            f"add table inet {table}",
            f"delete table inet {table}",
            f"table inet {table} {{",
            f"  set {SET} {{ type ipv4_addr; }}",
            "  chain output {",
            "    type filter hook output priority filter; policy accept;",
            f"    ip daddr @{SET} drop",
            f"    ip saddr @{SET} drop",
            "  }",
            "}",
            "",
        ]
    )


def loopback_address(host: str) -> str:
    """`host` if it is an IPv4 loopback address; a fault never touches any other.

    >>> loopback_address("127.0.3.11")
    '127.0.3.11'
    >>> loopback_address("10.0.3.11")
    Traceback (most recent call last):
    ...
    sandbox.infra.hostfaults.HostFaultError: 10.0.3.11 is not a loopback address: ...
    """
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise HostFaultError(f"{host!r} is not an IPv4 address") from None
    if not address.is_loopback:
        raise HostFaultError(f"{host} is not a loopback address: the sandbox faults only its own")
    return str(address)


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    stdin: str = ""


def silence_command(host: str, table: str = TABLE) -> Command:
    return Command(("nft", "add", "element", "inet", table, SET, f"{{ {loopback_address(host)} }}"))


def restore_command(host: str, table: str = TABLE) -> Command:
    host = loopback_address(host)
    return Command(("nft", "delete", "element", "inet", table, SET, f"{{ {host} }}"))


def reset_command(host: str, port: int) -> Command:
    """Abort the server side of every connection on host:port (the clients get a RST)."""
    return Command(
        ("ss", "--kill", "--tcp", "state", "established", "src", f"{loopback_address(host)}:{port}")
    )


class HostFaults:
    """The sandbox's nft table; `silence(host)` / `restore(host)` / `reset_connections`."""

    def __init__(self, table: str = TABLE) -> None:
        self.table = table
        self._silenced: set[str] = set()
        self._ready = False

    @property
    def silenced(self) -> frozenset[str]:
        return frozenset(self._silenced)

    @staticmethod
    def available() -> bool:
        """Whether this machine has the tools (Debian package nftables; ss is in iproute2)."""
        return shutil.which("nft") is not None and shutil.which("ss") is not None

    async def start(self) -> None:
        """Create the table (empty); a no-op when it is there already (a shared instance)."""
        if self._ready:
            return
        await _run(Command(("nft", "-f", "-"), render_table(self.table)))
        self._silenced.clear()
        self._ready = True

    async def stop(self) -> None:
        """Delete the table (every silenced host speaks again)."""
        if self._ready:
            await _run(Command(("nft", "delete", "table", "inet", self.table)))
        self._ready = False
        self._silenced.clear()

    async def silence(self, host: str) -> None:
        if not self._ready:
            await self.start()
        if host not in self._silenced:
            try:
                await _run(silence_command(host, self.table))
            except HostFaultError:
                # The table went away under us (someone ran `nft flush ruleset`): make it
                # again, once; a second failure is the error.
                self._ready = False
                await self.start()
                for silenced in self._silenced:
                    await _run(silence_command(silenced, self.table))
                await _run(silence_command(host, self.table))
            self._silenced.add(host)
            log.info("host %s silenced: its packets are dropped", host)

    async def restore(self, host: str) -> None:
        if host in self._silenced:
            await _run(restore_command(host, self.table))
            self._silenced.discard(host)
            log.info("host %s answers again", host)

    async def reset_connections(self, host: str, port: int) -> None:
        await _run(reset_command(host, port))


def delete_table_now(table: str = TABLE) -> bool:
    """Synchronously delete a table a crashed sandbox left; True if there was one."""
    if shutil.which("nft") is None:
        return False
    result = subprocess.run(
        ["nft", "delete", "table", "inet", table],
        capture_output=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    return result.returncode == 0


async def _run(command: Command) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise HostFaultError(
            f"{command.argv[0]}: {error} (install the Debian package "
            f"{'nftables' if command.argv[0] == 'nft' else 'iproute2'})"
        ) from None
    try:
        out, err = await asyncio.wait_for(
            process.communicate(command.stdin.encode()), COMMAND_TIMEOUT_SECONDS
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise HostFaultError(
            f"{' '.join(command.argv)}: no answer in {COMMAND_TIMEOUT_SECONDS}s"
        ) from None
    if process.returncode != 0:
        text = (err or out).decode(errors="replace").strip()
        raise HostFaultError(f"{' '.join(command.argv)} failed ({process.returncode}): {text}")
