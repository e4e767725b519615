"""Probe handlers against real sockets and commands: httpGet, tcpSocket, exec."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from sandbox.kube.kubelet.probe_runners import (
    ProbeOutcome,
    ProbeTarget,
    exec_command,
    http_outcome,
    resolve_port,
    run_probe,
)
from sandbox.kube.kubelet.probes import Result

HOST = "127.0.8.200"  # outside the pod ranges
TARGET = ProbeTarget(HOST, {"http": 18080})


@pytest.mark.parametrize(
    ("status_line", "result"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\n", Result.SUCCESS, id="200"),
        pytest.param(b"HTTP/1.1 302 Found\r\n", Result.SUCCESS, id="3xx-warning-is-success"),
        pytest.param(b"HTTP/1.1 399 Odd\r\n", Result.SUCCESS, id="399"),
        pytest.param(b"HTTP/1.1 400 Bad\r\n", Result.FAILURE, id="400"),
        pytest.param(b"HTTP/1.1 503 Unavailable\r\n", Result.FAILURE, id="503"),
        pytest.param(b"HTTP/1.1 199 Early\r\n", Result.FAILURE, id="below-200"),
        pytest.param(b"", Result.FAILURE, id="no-answer"),
    ],
)
def test_http_outcome(status_line: bytes, result: Result) -> None:
    assert http_outcome(status_line).result is result


@pytest.mark.parametrize(
    ("port", "resolved"),
    [
        pytest.param(8080, 8080, id="int"),
        pytest.param("8080", 8080, id="numeric-string"),
        pytest.param("http", 18080, id="named"),
        pytest.param("nope", None, id="unknown-name"),
    ],
)
def test_resolve_port(port: object, resolved: int | None) -> None:
    assert resolve_port(port, TARGET) == resolved


def serve(answer: bytes | None, seen: list[bytes]) -> Callable[[], Awaitable[asyncio.Server]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        if answer is None:
            await asyncio.sleep(5)  # hang
        else:
            writer.write(answer)
            await writer.drain()
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, HOST, 18080)

    return start


def probe_against(answer: bytes | None, probe: dict[str, object]) -> tuple[ProbeOutcome, bytes]:
    seen: list[bytes] = []

    async def main() -> ProbeOutcome:
        server = await serve(answer, seen)()
        async with server:
            return await run_probe(probe, TARGET, timeout=0.5)

    outcome = asyncio.run(main())
    return outcome, seen[0] if seen else b""


def test_http_get_sends_the_kube_probe_user_agent() -> None:
    probe = {
        "httpGet": {
            "path": "/health/ready",
            "port": "http",
            "httpHeaders": [{"name": "X-Probe", "value": "1"}],
        }
    }
    outcome, request = probe_against(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", probe)
    assert outcome.result is Result.SUCCESS
    assert request.startswith(b"GET /health/ready HTTP/1.1\r\n")
    assert b"User-Agent: kube-probe/1.32\r\n" in request
    assert b"X-Probe: 1\r\n" in request
    assert f"Host: {HOST}:18080".encode() in request


def test_http_get_503_is_a_failure_with_upstreams_message() -> None:
    outcome, _ = probe_against(
        b"HTTP/1.1 503 Service Unavailable\r\n\r\n", {"httpGet": {"path": "/", "port": 18080}}
    )
    assert outcome == ProbeOutcome(Result.FAILURE, "HTTP probe failed with statuscode: 503")


def test_http_get_timeout_is_a_failure() -> None:
    outcome, _ = probe_against(None, {"httpGet": {"path": "/", "port": 18080}})
    assert outcome.result is Result.FAILURE
    assert "context deadline exceeded" in outcome.output


@pytest.mark.parametrize(
    "probe",
    [
        pytest.param({"httpGet": {"path": "/", "port": 18081}}, id="http"),
        pytest.param({"tcpSocket": {"port": 18081}}, id="tcp"),
    ],
)
def test_connection_refused_is_a_failure(probe: dict[str, object]) -> None:
    outcome = asyncio.run(run_probe(probe, TARGET, timeout=0.5))
    assert outcome.result is Result.FAILURE
    assert outcome.output.endswith("connect: connection refused")


def test_tcp_socket_success() -> None:
    outcome, _ = probe_against(b"", {"tcpSocket": {"port": "http"}})
    assert outcome.result is Result.SUCCESS


@pytest.mark.parametrize(
    ("command", "result"),
    [
        pytest.param([sys.executable, "-c", "pass"], Result.SUCCESS, id="exit-0"),
        pytest.param([sys.executable, "-c", "raise SystemExit(2)"], Result.FAILURE, id="exit-2"),
        pytest.param(
            [sys.executable, "-c", "import time; time.sleep(5)"], Result.FAILURE, id="timeout"
        ),
        pytest.param(["/nonexistent/binary"], Result.FAILURE, id="not-found"),
    ],
)
def test_exec(command: list[str], result: Result) -> None:
    assert asyncio.run(exec_command(command, timeout=1.0)).result is result


def test_unsupported_handler_is_thrown_away() -> None:
    outcome = asyncio.run(run_probe({"grpc": {"port": 9000}}, TARGET, timeout=0.5))
    assert outcome.result is Result.UNKNOWN
