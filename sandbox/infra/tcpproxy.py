"""A TCP proxy standing in for a cloud endpoint's DNS name (the RDS endpoint).

Each accepted connection is joined to a fresh connection to the current
target; bytes are copied both ways through bounded buffers (a slow reader
pauses the other side instead of growing memory). `switch()` changes where new
connections go, `drop_all()` resets every open connection (as a failover does
to clients of the old primary), `pause()` closes the listening socket so that
new connections are refused until `resume()`. A client that resets or
vanishes only ends its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from dataclasses import dataclass

from sandbox.infra.supervisor import AddressInUseError, Endpoint, InfraError

log = logging.getLogger(__name__)

BUFFER_SIZE = 64 * 1024
CONNECT_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 5.0
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() sends RST


@dataclass(frozen=True)
class ProxyStats:
    active: int  # connections open now
    accepted: int  # connections accepted since start
    failed: int  # accepted but the target could not be reached
    dropped: int  # reset by drop_all()


class _Link:
    """One client connection and, once connected, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.dropped = False  # reset by drop_all()
        self.reset = False  # aborted (error, refusal, drop or the end)

    def abort(self) -> None:
        """Reset both sides (RST, as a vanished server looks to its clients)."""
        self.reset = True
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None and not writer.transport.is_closing():
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            writer.transport.abort()

    async def close(self, timeout: float) -> None:
        """Close both sides after their buffered bytes are written (reset after `timeout`)."""
        writers = [writer for writer in (self.client, self.upstream) if writer is not None]
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout)
        self.abort()


class TcpProxy:
    """`TcpProxy("127.0.3.10", 5432, Endpoint("127.0.3.11", 5432))`; `await start()`."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        target: Endpoint,
        *,
        buffer_size: int = BUFFER_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        name: str = "proxy",
    ) -> None:
        self.listen = Endpoint(listen_host, listen_port)
        self.name = name
        self._target = target
        self._buffer_size = buffer_size
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._paused = False
        self._links: dict[_Link, asyncio.Task[None]] = {}
        self._accepted = self._failed = self._dropped = 0

    @property
    def target(self) -> Endpoint:
        return self._target

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def serving(self) -> bool:
        return self._server is not None

    def stats(self) -> ProxyStats:
        return ProxyStats(len(self._links), self._accepted, self._failed, self._dropped)

    async def start(self) -> None:
        self._paused = False
        await self._listen()

    async def stop(self) -> None:
        """Stop listening and reset every connection; returns once all are gone."""
        self._close_listener()
        self.drop_all()
        tasks = list(self._links.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def switch(self, target: Endpoint) -> None:
        """New connections go to `target`; open ones stay where they are."""
        log.info("%s: %s now forwards to %s", self.name, self.listen, target)
        self._target = target

    def drop_all(self) -> int:
        """Reset every open connection (both sides); returns how many."""
        links = list(self._links)
        for link in links:
            link.dropped = True
            link.abort()
        self._dropped += len(links)
        return len(links)

    def pause(self) -> None:
        """Refuse new connections (the listening socket is closed) until `resume()`."""
        self._paused = True
        self._close_listener()

    async def resume(self) -> None:
        self._paused = False
        if self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve,
                self.listen.host,
                self.listen.port,
                limit=self._buffer_size,
                reuse_address=True,
            )
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AddressInUseError(
                    f"{self.name}: {self.listen} is already in use; is another sandbox running?"
                ) from error
            raise InfraError(f"{self.name}: cannot listen on {self.listen}: {error}") from error
        # Port 0 picks a free port; keep it, so that resume() listens where start() did.
        self.listen = Endpoint(self.listen.host, self._server.sockets[0].getsockname()[1])

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        task = asyncio.current_task()
        assert task is not None
        self._links[link] = task
        self._accepted += 1
        try:
            upstream = None if self._paused else await self._connect(link)
            if upstream is None:
                link.abort()
                return
            up_reader, up_writer = upstream
            await asyncio.gather(
                self._pipe(reader, up_writer, link), self._pipe(up_reader, writer, link)
            )
            if not link.reset:
                await link.close(CLOSE_TIMEOUT_SECONDS)
        finally:
            link.abort()
            del self._links[link]

    async def _connect(
        self, link: _Link
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        target = self._target
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port, limit=self._buffer_size),
                self._connect_timeout,
            )
        except (OSError, TimeoutError) as error:
            self._failed += 1
            log.info("%s: cannot reach %s: %s", self.name, target, error)
            return None
        link.upstream = up_writer
        if link.dropped:  # drop_all() ran while we were connecting
            return None
        for side in (link.client, up_writer):
            side.transport.set_write_buffer_limits(high=self._buffer_size)
        return up_reader, up_writer

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Copy until EOF (then half-close `sink`); on any socket error reset the link."""
        try:
            while data := await source.read(self._buffer_size):
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof() and not sink.transport.is_closing():
                with contextlib.suppress(OSError):
                    sink.write_eof()
        except (ConnectionError, OSError):
            link.abort()
