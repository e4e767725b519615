"""The netem worker: one process per netem fault, shaping one NFQUEUE.

    python -m sandbox.cni.netem_worker --queue N --spec '<NetemParams as JSON>' [--seed S]

Binds queue N, then prints one JSON line on stdout, `{"ready": true, "queue": N,
"pid": P}`, which its parent waits for. From then on every packet the kernel queues
goes through `PacketShaper` (sandbox/cni/netem.py) and gets its verdict when due:
the loop reads packets without blocking, sleeps in select() until the next verdict
falls due or a packet arrives, and sends the due verdicts in one batch.

It dies with its parent (PR_SET_PDEATHSIG=SIGTERM, as `sandbox/processes.py` sets up
for every sandbox child), and on SIGTERM or SIGINT it unbinds the queue and exits 0;
the kernel then drops the packets still held, as deleting a netem qdisc does. Killed
outright, its socket closes and `--queue-bypass` lets traffic flow again.

Exit codes: 0 stopped on a signal, 1 could not bind or serve the queue (one line on
stderr), 2 a command-line mistake (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import select
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from sandbox.cni.faults import NetemParams
from sandbox.cni.netem import NetemSpecError, PacketShaper, validate
from sandbox.cni.nfqueue import NfQueue, NfQueueError
from sandbox.processes import die_with_parent

EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_QUEUE = 65535


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def params_from_json(text: str) -> NetemParams:
    """`NetemParams` from its JSON object (field names as in faults.py; absent: default).

    Raises ValueError naming the problem: not JSON, unknown fields, wrong types, or
    values tc would refuse.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--spec is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError("--spec must be a JSON object")
    fields = {field.name: field for field in dataclasses.fields(NetemParams)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"--spec has unknown fields: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        wants_int = fields[name].type in ("int", int)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"--spec field {name} must be a number")
        if wants_int and not float(value).is_integer():
            raise ValueError(f"--spec field {name} must be an integer")
        values[name] = int(value) if wants_int else float(value)
    params = NetemParams(**values)
    problems = validate(params)
    if problems:
        raise ValueError("--spec: " + "; ".join(problems))
    return params


def params_to_json(params: NetemParams) -> str:
    return json.dumps(dataclasses.asdict(params), separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class Options:
    queue: int
    params: NetemParams
    seed: int | None
    parent: int | None


def parse_arguments(argv: Sequence[str]) -> Options:
    """Raises _UsageError with one line saying what is wrong."""
    parser = _Parser(prog="python -m sandbox.cni.netem_worker", add_help=True)
    parser.add_argument("--queue", type=int, required=True, help="the NFQUEUE number to bind")
    parser.add_argument("--spec", required=True, help="NetemParams as a JSON object")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random numbers")
    parser.add_argument("--parent", type=int, default=None, help="exit when this pid is gone")
    args = parser.parse_args(list(argv))
    if not 0 <= args.queue <= MAX_QUEUE:
        raise _UsageError(f"--queue must be within 0..{MAX_QUEUE}, not {args.queue}")
    try:
        params = params_from_json(args.spec)
    except (ValueError, NetemSpecError) as error:
        raise _UsageError(str(error)) from None
    return Options(args.queue, params, args.seed, args.parent)


class _Stop:
    """SIGTERM / SIGINT set a flag and wake select() through a pipe."""

    def __init__(self) -> None:
        self.requested = False
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def install(self) -> None:
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for signo in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signo, self._handle)

    def _handle(self, _signo: int, _frame: object) -> None:
        self.requested = True


def serve(queue: NfQueue, shaper: PacketShaper, stop: _Stop) -> None:
    """Until asked to stop: packets in, the model's verdicts out when due."""
    while not stop.requested:
        now = time.monotonic()
        due = shaper.due(now)
        if due:
            queue.verdicts([(verdict.packet_id, verdict.accept) for verdict in due])
        next_due = shaper.next_due()
        timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
        readable, _, _ = select.select([queue.fileno(), stop.read_fd], [], [], timeout)
        if stop.read_fd in readable:
            _drain(stop.read_fd)
        if queue.fileno() in readable:
            arrived = time.monotonic()
            for packet in queue.receive():
                shaper.arrive(packet.packet_id, packet.length, arrived)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def run(options: Options) -> int:
    stop = _Stop()
    stop.install()
    if options.parent is not None:
        die_with_parent(options.parent, signal.SIGTERM)()
    else:
        die_with_parent(os.getppid(), signal.SIGTERM)()
    shaper = PacketShaper(options.params, random.Random(options.seed))
    try:
        queue = NfQueue(options.queue)
    except NfQueueError as error:
        print(f"netem worker: {error.strerror}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except OSError as error:
        print(f"netem worker: queue {options.queue}: {error}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    with queue:
        ready = {"ready": True, "queue": options.queue, "pid": os.getpid()}
        print(json.dumps(ready), flush=True)
        try:
            serve(queue, shaper, stop)
        except OSError as error:
            print(f"netem worker: queue {options.queue}: {error}", file=sys.stderr, flush=True)
            return EXIT_FAILED
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_arguments(sys.argv[1:] if argv is None else argv)
    except _UsageError as error:
        print(f"netem worker: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
