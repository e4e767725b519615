"""The pod network's I/O: the nft table, the iptables-nft queue chain, the netem workers.

`apply(state)` brings the kernel and the workers to `state` and returns when they
are there, so that a caller may then say "injected". It is serialized: one apply
at a time, each from the whole desired state (never a delta), so a failed apply
is repaired by the next. Netem workers are kept while their fault and parameters
stay the same (a restart would release every held packet at once), started for new
faults and stopped for gone ones. `delete_now()` removes everything synchronously,
for `resilience sandbox down` after a crash. Before each apply, the tables and
chains of sandboxes that died without removing them are removed (`ownership`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.cni import ownership
from sandbox.cni.faults import NetemParams, TrafficFault
from sandbox.cni.ruleset import (
    NetworkTable,
    PodAddress,
    QueuedFault,
    iptables_chain,
    iptables_queue_rules,
    render_table,
    table_name,
)
from sandbox.cni.services import ServicePortRoute
from sandbox.cni.zones import IsolatedZone

log = logging.getLogger(__name__)
COMMAND_TIMEOUT_SECONDS = 10.0
QUEUE_BASE = 0x4846  # the sandbox's NFQUEUE numbers start here ("HF"), one per netem fault
QUEUES_PER_SANDBOX = 64


class PodNetworkError(OSError):
    """nft, iptables or a netem worker failed: the network is not what was asked."""


@dataclass(frozen=True)
class NetworkState:
    """Everything the pod network should realize, as of now."""

    pods: tuple[PodAddress, ...] = ()
    faults: tuple[TrafficFault, ...] = ()
    policy_chains: str = ""
    isolated: tuple[IsolatedZone, ...] = ()
    services: tuple[ServicePortRoute, ...] = ()  # kube-proxy's ClusterIP routes


class NetemWorker(Protocol):
    async def stop(self) -> object: ...


StartWorker = Callable[[int, NetemParams], Awaitable[NetemWorker]]


@dataclass
class _Running:
    params: NetemParams
    queue: int
    worker: NetemWorker


def queue_range(sandbox_id: str) -> range:
    """This sandbox's NFQUEUE numbers: a block chosen by its id, so two sandboxes on one
    machine rarely meet (a taken number fails the worker's bind, and the next is tried)."""
    start = QUEUE_BASE + (int(sandbox_id[:4], 16) % 256) * QUEUES_PER_SANDBOX
    return range(start, start + QUEUES_PER_SANDBOX)


@dataclass
class PodNetwork:
    sandbox_id: str
    start_worker: StartWorker
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _workers: dict[str, _Running] = field(default_factory=dict)
    _started: bool = False
    _owner: ownership.OwnerLock | None = None

    @property
    def table(self) -> str:
        return table_name(self.sandbox_id)

    @property
    def chain(self) -> str:
        return iptables_chain(self.sandbox_id)

    @staticmethod
    def available() -> bool:
        """Whether this machine has the tools (Debian packages nftables and iptables)."""
        return shutil.which("nft") is not None and shutil.which("iptables") is not None

    async def start(self) -> None:
        async with self._lock:
            self._owner = self._owner or ownership.OwnerLock(self.sandbox_id)
            try:
                self._owner.acquire()
            except ownership.OwnerLockError as error:
                raise PodNetworkError(str(error)) from None
            await asyncio.to_thread(reap_orphans, self.sandbox_id, True)
            await _run(["nft", "-f", "-"], render_table(NetworkTable(self.table)))
            await _ensure_iptables_chain(self.chain)
            self._started = True

    async def apply(self, state: NetworkState) -> None:
        async with self._lock:
            if not self._started:
                raise PodNetworkError("the pod network is not started")
            queued = await self._sync_workers([f for f in state.faults if f.action == "netem"])
            partitions = tuple(f for f in state.faults if f.action == "partition")
            table = NetworkTable(
                self.table,
                state.pods,
                partitions,
                queued,
                state.policy_chains,
                state.isolated,
                state.services,
            )
            await asyncio.to_thread(reap_orphans, self.sandbox_id, False)
            await _run(["nft", "-f", "-"], render_table(table))
            for arguments in iptables_queue_rules(self.chain, queued):
                await _run(["iptables", "-w", "5", *arguments])
            await self._stop_workers(keep={q.fault.key for q in queued})

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_workers(keep=set())
            if self._started:
                await asyncio.to_thread(delete_now, self.sandbox_id)
            self._started = False
            if self._owner is not None:
                self._owner.release()

    async def _sync_workers(self, faults: Sequence[TrafficFault]) -> tuple[QueuedFault, ...]:
        queued: list[QueuedFault] = []
        for fault in sorted(faults, key=lambda f: f.key):
            running = self._workers.get(fault.key)
            if running is not None and running.params != fault.netem:
                await running.worker.stop()
                del self._workers[fault.key]
                running = None
            if running is None:
                running = await self._start_worker(fault.netem)
                self._workers[fault.key] = running
            queued.append(QueuedFault(fault, running.queue))
        return tuple(queued)

    async def _start_worker(self, params: NetemParams) -> _Running:
        taken = {running.queue for running in self._workers.values()}
        errors: list[str] = []
        for queue in queue_range(self.sandbox_id):
            if queue in taken:
                continue
            try:
                return _Running(params, queue, await self.start_worker(queue, params))
            except (OSError, RuntimeError) as error:  # the queue is taken: try the next
                errors.append(f"{queue}: {error}")
                if len(errors) >= 3:
                    break
        raise PodNetworkError(f"no netem worker could start ({'; '.join(errors) or 'no queue'})")

    async def _stop_workers(self, keep: set[str]) -> None:
        for key in [k for k in self._workers if k not in keep]:
            await self._workers.pop(key).worker.stop()


async def _ensure_iptables_chain(chain: str) -> None:
    """The chain exists, empty, and OUTPUT jumps to it once."""
    if await _status(["iptables", "-w", "5", "-t", "mangle", "-L", chain, "-n"]) != 0:
        await _run(["iptables", "-w", "5", "-t", "mangle", "-N", chain])
    await _run(["iptables", "-w", "5", "-t", "mangle", "-F", chain])
    if await _status(["iptables", "-w", "5", "-t", "mangle", "-C", "OUTPUT", "-j", chain]) != 0:
        await _run(["iptables", "-w", "5", "-t", "mangle", "-A", "OUTPUT", "-j", chain])


def delete_now(sandbox_id: str) -> bool:
    """Remove this sandbox's table and iptables chain (True if anything was there)."""
    found = False
    table, chain = table_name(sandbox_id), iptables_chain(sandbox_id)
    if shutil.which("nft") is not None:
        found |= _sync(["nft", "delete", "table", "inet", table]) == 0
    if shutil.which("iptables") is not None:
        while _sync(["iptables", "-w", "5", "-t", "mangle", "-D", "OUTPUT", "-j", chain]) == 0:
            found = True
        if _sync(["iptables", "-w", "5", "-t", "mangle", "-F", chain]) == 0:
            found = True
            _sync(["iptables", "-w", "5", "-t", "mangle", "-X", chain])
    return found


def reap_orphans(own: str, chains_too: bool) -> list[str]:
    """Remove the pod networks of sandboxes that died without removing them (their ids).

    Only nft's tables are listed before each apply (one cheap call); the iptables
    chains too at start, for a sandbox killed between creating its table and its chain.
    """
    tables = _output(["nft", "list", "tables"])
    rules = _output(["iptables", "-w", "5", "-t", "mangle", "-S"]) if chains_too else ""
    dead = ownership.orphans(ownership.sandbox_ids(tables, rules), own, ownership.owner_alive)
    for sandbox_id in dead:
        log.warning(
            "removing the pod network of sandbox %s: its process is gone and its rules "
            "name addresses other sandboxes may take",
            sandbox_id,
        )
        delete_now(sandbox_id)
        ownership.forget(sandbox_id)
    return dead


def _sync(argv: list[str]) -> int:
    try:
        return subprocess.run(
            argv, capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return -1


def _output(argv: list[str]) -> str:
    """What a listing command printed ('' when it failed: nothing to reap is safe)."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


async def _status(argv: list[str]) -> int:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError as error:
        raise PodNetworkError(f"{argv[0]}: {error}") from None
    try:
        return await asyncio.wait_for(process.wait(), COMMAND_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise PodNetworkError(f"{argv[0]}: no answer in {COMMAND_TIMEOUT_SECONDS}s") from None


async def _run(argv: list[str], stdin: str = "") -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise PodNetworkError(
            f"{argv[0]}: {error} (install the Debian packages nftables and iptables)"
        ) from None
    try:
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode()), COMMAND_TIMEOUT_SECONDS
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise PodNetworkError(f"{argv[0]}: no answer in {COMMAND_TIMEOUT_SECONDS}s") from None
    if process.returncode != 0:
        text = (err or out).decode(errors="replace").strip()
        raise PodNetworkError(f"{' '.join(argv[:3])} failed ({process.returncode}): {text}")
