"""NginxProcess against the real nginx: start, reload (good and bad), stop, die with the parent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.infra.nginx_config import NO_ENDPOINTS_BODY, NginxPaths, render_config
from sandbox.infra.nginx_process import NginxError, NginxProcess
from sandbox.state import pids_dir
from tests.sandbox.infra.builders import NGINX, living, make_ingress, make_service, our_children

pytestmark = pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed")


@pytest.fixture(autouse=True)
def no_survivors() -> Iterator[None]:
    before = our_children()
    yield
    assert our_children() - before == set(), "a process outlived its test"


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ingress_config(nginx: NginxProcess) -> str:
    """/api routed to a Service with no endpoints: 503 JSON."""
    return render_config(
        [make_ingress()],
        [make_service()],
        [],
        nginx.listen_host,
        nginx.port,
        nginx.paths,
        worker_user=nginx.worker_user,
    )


def test_start_serves_404_json_and_stop_leaves_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        nginx = NginxProcess(tmp_path)
        await nginx.start()
        try:
            assert nginx.url == f"http://127.0.0.1:{nginx.port}"
            assert nginx.running and nginx.worker_pids()
            assert sorted(os.listdir(pids_dir(tmp_path))) == [str(nginx.pid)]
            status, body = await asyncio.to_thread(get, nginx.url + "/api/sessions")
            assert status == 404
            assert json.loads(body) == {"error": {"code": 404, "message": "not found"}}
        finally:
            await nginx.stop()
        assert not nginx.running
        assert os.listdir(pids_dir(tmp_path)) == []
        line = json.loads(nginx.paths.access_log.read_text().splitlines()[-1])
        assert (line["status"], line["uri"], line["upstream"]) == (404, "/api/sessions", "")

    asyncio.run(main())


def test_reload_applies_a_good_config_and_keeps_the_old_one_when_nginx_rejects(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        nginx = NginxProcess(tmp_path)
        await nginx.start()
        try:
            good = ingress_config(nginx)
            assert await nginx.reload(good)
            status, body = await asyncio.to_thread(get, nginx.url + "/api/x")
            assert (status, body.decode()) == (503, NO_ENDPOINTS_BODY)
            workers = nginx.worker_pids()

            bad = good.replace("daemon off;", "daemon off;\nbogus on;")
            assert not await nginx.reload(bad)
            assert nginx.config_text == good
            assert nginx.paths.conf.read_text() == good
            assert not nginx.paths.conf.with_name("nginx.conf.next").exists()
            assert nginx.worker_pids() == workers  # not even signalled
            status, _ = await asyncio.to_thread(get, nginx.url + "/api/x")
            assert status == 503
            assert nginx.reloads == 1
        finally:
            await nginx.stop()

    asyncio.run(main())


def test_start_fails_with_the_error_log_when_the_port_is_taken(tmp_path: Path) -> None:
    async def main() -> None:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            nginx = NginxProcess(tmp_path, listen_port=squatter.getsockname()[1])
            with pytest.raises(NginxError, match="Address already in use"):
                await nginx.start()
        assert not nginx.running
        assert os.listdir(pids_dir(tmp_path)) == []

    asyncio.run(main())


def test_start_refuses_a_config_nginx_rejects(tmp_path: Path) -> None:
    async def main() -> None:
        nginx = NginxProcess(tmp_path)
        with pytest.raises(NginxError, match='unknown directive "bogus"'):
            await nginx.start("events {}\nbogus;\n")
        assert not nginx.running

    asyncio.run(main())


def test_listens_on_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        NginxProcess(tmp_path, listen_host="0.0.0.0")


def test_paths_are_all_under_the_state_dir(tmp_path: Path) -> None:
    nginx = NginxProcess(tmp_path)
    assert nginx.paths == NginxPaths(tmp_path / "nginx")
    text = nginx.empty_config()
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path"):
        line = next(li for li in text.splitlines() if li.strip().startswith(directive + " "))
        assert f" {tmp_path}/nginx/" in line, line


PARENT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from sandbox.infra.nginx_process import NginxProcess

    async def main():
        nginx = NginxProcess(Path(sys.argv[1]))
        await nginx.start()
        print(json.dumps([nginx.pid, sorted(nginx.worker_pids())]), flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_nginx_and_its_workers_die_with_their_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert parent.stdout is not None
        master, workers = json.loads(parent.stdout.readline())
        started = living({master, *workers})
        assert started == {master, *workers}
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while living(started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert living(started) == set()
    # the record stays behind for `sandbox down`, naming the master
    assert os.listdir(pids_dir(tmp_path)) == [str(master)]
