"""A pseudo-terminal for `kubectl exec -t`, and the resize stream that sizes it.

With `tty=true` the runtime gives the command a terminal instead of pipes: one
output stream (stderr joins stdout), a controlling tty (so `sh` is interactive,
Ctrl-C is SIGINT from the line discipline), and a size the client keeps current
by writing `{"Width":W,"Height":H}` JSON values on the resize stream (channel 4 of
`v4`/`v5.channel.k8s.io`). The kubelet decodes that stream as consecutive JSON
values (k8s.io/kubelet pkg/cri/streaming/remotecommand/httpstream.go
`handleResizeEvents`, `json.NewDecoder`), so a value may span frames;
`ResizeDecoder` does the same, and `set_size` is runc's `console.Resize`
(TIOCSWINSZ on the master).

    >>> ResizeDecoder().feed(b'{"Width":80,"Height":24}{"Width":1')
    [TerminalSize(width=80, height=24)]
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TerminalSize:
    width: int
    height: int


@dataclass
class ResizeDecoder:
    """Bytes of the resize stream in, the sizes they complete out (bad values skipped)."""

    _buffer: str = ""
    _decoder: json.JSONDecoder = field(default_factory=json.JSONDecoder)

    def feed(self, data: bytes) -> list[TerminalSize]:
        self._buffer += data.decode("utf-8", errors="replace")
        sizes: list[TerminalSize] = []
        while self._buffer.strip():
            text = self._buffer.lstrip()
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > 4096:  # not JSON at all: drop it rather than grow
                    self._buffer = ""
                return sizes
            self._buffer = text[end:]
            size = _size(value)
            if size is not None:
                sizes.append(size)
        return sizes


def _size(value: object) -> TerminalSize | None:
    if not isinstance(value, dict):
        return None
    width, height = value.get("Width"), value.get("Height")
    if not isinstance(width, int) or not isinstance(height, int):
        return None
    if not (0 <= width < 65536 and 0 <= height < 65536):
        return None
    return TerminalSize(width, height)


def set_size(fd: int, size: TerminalSize) -> None:
    """TIOCSWINSZ: rows, columns (the kernel sends SIGWINCH to the foreground group)."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def controlling_terminal(setup: Callable[[], None]) -> Callable[[], None]:
    """A `preexec_fn`: the given setup, then make stdin (the pty's slave) the session's
    controlling terminal. The child is already a session leader (`start_new_session`)."""

    def preexec() -> None:
        setup()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return preexec


@dataclass
class Terminal:
    """The master side: read the command's output, write its input, resize it."""

    master: int
    output: asyncio.StreamReader
    _input: asyncio.StreamWriter

    async def write(self, data: bytes) -> None:
        self._input.write(data)
        await self._input.drain()

    def resize(self, size: TerminalSize) -> None:
        set_size(self.master, size)

    def close(self) -> None:
        self._input.close()
        with contextlib.suppress(OSError):
            os.close(self.master)


def open_pty() -> tuple[int, int]:
    """(master, slave), both close-on-exec except what the child inherits by dup2."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    return master, slave


async def terminal(master: int) -> Terminal:
    """Attach asyncio streams to the master; reads end (EIO) when the slave side closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(master), "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(master), "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return Terminal(master, reader, writer)
