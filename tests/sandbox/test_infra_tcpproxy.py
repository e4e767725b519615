"""The endpoint proxy against small local servers: forward, switch, drop, refuse, survive."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from sandbox.infra.supervisor import AddressInUseError, Endpoint, ensure_free
from sandbox.infra.tcpproxy import TcpProxy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[Endpoint]:
    listener = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield Endpoint("127.0.0.1", listener.sockets[0].getsockname()[1])
    finally:
        listener.close()


def named_echo(name: bytes) -> Handler:
    """Answers each chunk with `<name>:<chunk>`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(name + b":" + data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return handle


@asynccontextmanager
async def running(proxy: TcpProxy) -> AsyncIterator[TcpProxy]:
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@asynccontextmanager
async def proxied(handler: Handler) -> AsyncIterator[TcpProxy]:
    """A started proxy in front of a server running `handler`."""
    async with server(handler) as upstream, running(TcpProxy("127.0.0.1", 0, upstream)) as proxy:
        yield proxy


async def ask(endpoint: Endpoint, message: bytes = b"hi") -> bytes:
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    try:
        writer.write(message)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1024), 5)
    finally:
        writer.close()


async def settle(check: Callable[[], bool]) -> None:
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def test_forwards_both_ways_and_counts() -> None:
    async def main() -> None:
        async with proxied(named_echo(b"a")) as proxy:
            assert await ask(proxy.listen, b"ping") == b"a:ping"
            assert await ask(proxy.listen, b"pong") == b"a:pong"
            await settle(lambda: proxy.stats().active == 0)
            stats = proxy.stats()
            assert (stats.accepted, stats.failed, stats.dropped) == (2, 0, 0)

    asyncio.run(main())


def test_switch_moves_new_connections_only() -> None:
    async def main() -> None:
        async with server(named_echo(b"b")) as second, proxied(named_echo(b"a")) as proxy:
            reader, writer = await asyncio.open_connection(*_address(proxy.listen))
            writer.write(b"1")
            assert await reader.read(100) == b"a:1"
            proxy.switch(second)
            assert proxy.target == second
            assert await ask(proxy.listen) == b"b:hi"
            writer.write(b"2")
            assert await reader.read(100) == b"a:2"  # the open one stays where it was
            writer.close()

    asyncio.run(main())


def test_drop_all_resets_open_connections() -> None:
    async def main() -> None:
        async with proxied(named_echo(b"a")) as proxy:
            clients = [await asyncio.open_connection(*_address(proxy.listen)) for _ in range(3)]
            for reader, writer in clients:
                writer.write(b"x")
                assert await reader.read(100) == b"a:x"
            assert proxy.stats().active == 3
            assert proxy.drop_all() == 3
            for reader, writer in clients:
                with pytest.raises(ConnectionResetError):
                    await asyncio.wait_for(reader.read(100), 5)
                writer.close()
            await settle(lambda: proxy.stats().active == 0)
            assert proxy.stats().dropped == 3
            assert await ask(proxy.listen) == b"a:hi"  # still serving

    asyncio.run(main())


def test_pause_refuses_and_resume_listens_on_the_same_port() -> None:
    async def main() -> None:
        async with proxied(named_echo(b"a")) as proxy:
            port = proxy.listen.port
            proxy.pause()
            assert proxy.paused
            with pytest.raises(ConnectionRefusedError):
                await ask(proxy.listen)
            await proxy.resume()
            assert proxy.listen.port == port
            assert await ask(proxy.listen) == b"a:hi"

    asyncio.run(main())


def test_unreachable_target_closes_the_client_and_keeps_serving() -> None:
    async def main() -> None:
        async with server(named_echo(b"a")) as upstream:
            gone = Endpoint("127.0.0.1", _free_port())
            async with running(TcpProxy("127.0.0.1", 0, gone)) as proxy:
                with pytest.raises(ConnectionResetError):
                    await ask(proxy.listen)
                assert proxy.stats().failed == 1
                proxy.switch(upstream)
                assert await ask(proxy.listen) == b"a:hi"

    asyncio.run(main())


def test_client_reset_ends_only_its_own_connection() -> None:
    async def main() -> None:
        async with proxied(named_echo(b"a")) as proxy:
            for _ in range(5):
                raw = socket.create_connection(_address(proxy.listen))
                raw.sendall(b"x" * 10000)
                # SO_LINGER 0: close() sends RST
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.close()
            await settle(lambda: proxy.stats().active == 0)
            assert await ask(proxy.listen) == b"a:hi"

    asyncio.run(main())


def test_half_close_delivers_the_answer() -> None:
    async def reverse_at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with proxied(reverse_at_eof) as proxy:
            reader, writer = await asyncio.open_connection(*_address(proxy.listen))
            writer.write(b"abc" * 100_000)
            writer.write_eof()
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer == (b"abc" * 100_000)[::-1]
            writer.close()

    asyncio.run(main())


def test_a_client_that_does_not_read_holds_the_sender_back() -> None:
    """Bounded buffers: what the upstream got rid of stays near the socket buffers' sum."""
    sent = 0

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        chunk = b"x" * 65536
        try:
            while sent < 512 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            pass

    async def main() -> None:
        async with proxied(firehose) as proxy:
            _, writer = await asyncio.open_connection(*_address(proxy.listen))
            await asyncio.sleep(2.0)
            assert sent < 128 * 1024 * 1024, f"upstream pushed {sent} bytes"
            writer.close()

    asyncio.run(main())


def test_stop_releases_the_port_and_a_taken_port_fails_fast() -> None:
    async def main() -> None:
        async with server(named_echo(b"a")) as upstream:
            proxy = TcpProxy("127.0.0.1", 0, upstream)
            async with running(proxy):
                second = TcpProxy("127.0.0.1", proxy.listen.port, upstream, name="second")
                with pytest.raises(AddressInUseError, match=str(proxy.listen.port)):
                    await second.start()
                with pytest.raises(AddressInUseError, match="another sandbox"):
                    ensure_free([proxy.listen], "test")
            ensure_free([proxy.listen], "test")
            assert not proxy.serving

    asyncio.run(main())


def _address(endpoint: Endpoint) -> tuple[str, int]:
    return endpoint.host, endpoint.port


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
