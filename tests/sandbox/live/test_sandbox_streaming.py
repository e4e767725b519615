"""Real kubectl and the Python client against a sandbox: exec, attach, cp, port-forward.

kubectl 1.32 speaks WebSocket v5.channel.k8s.io for exec and attach and SPDY/3.1
tunnelled in a WebSocket for port-forward, and plain SPDY/3.1 upgrades when told
(`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`);
kubectl tests run both ways. The Python client speaks v4/v5 channels.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import socket
import struct
import subprocess
import termios
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import portforward, stream

from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for

PORT_FORWARD_SECONDS = 30
# kubectl 1.32 speaks WebSockets unless told otherwise; each live test runs both ways.
SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
TRANSPORTS = [pytest.param({}, id="websocket"), pytest.param(SPDY, id="spdy")]
SPDY_PORT_FORWARD = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}


@pytest.fixture(scope="module")
def app(sandbox: SandboxHarness) -> tuple[str, str]:
    """(namespace, a Running pod of a one-replica testapp Deployment)."""
    namespace = sandbox.new_namespace()
    client.AppsV1Api(sandbox.api_client()).create_namespaced_deployment(
        namespace, app_deployment("web", 1)
    )
    sandbox.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=120s")
    pods = client.CoreV1Api(sandbox.api_client()).list_namespaced_pod(namespace).items
    return namespace, pods[0].metadata.name


def run_kubectl(
    sandbox: SandboxHarness, args: list[str], transport: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**sandbox.env(), **transport},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_echo(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    done = run_kubectl(sandbox, ["exec", "-n", namespace, pod, "--", "echo", "hi"], transport)
    assert (done.returncode, done.stdout) == (0, "hi\n"), done


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_exit_code_is_kubectls(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    args = ["exec", "-n", namespace, pod, "--", "sh", "-c", "echo oops >&2; exit 3"]
    done = run_kubectl(sandbox, args, transport)
    assert (done.returncode, done.stderr) == (3, "oops\ncommand terminated with exit code 3\n")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_stdin(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    args = ["exec", "-i", "-n", namespace, pod, "--", "sh", "-c", "tr a-z A-Z; echo end"]
    done = run_kubectl(sandbox, args, transport, stdin="hello\nworld\n")
    assert (done.returncode, done.stdout) == (0, "HELLO\nWORLD\nend\n"), done


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_of_a_missing_binary_says_why(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    done = run_kubectl(sandbox, ["exec", "-n", namespace, pod, "--", "no-such-binary"], transport)
    assert done.returncode != 0 and "executable file not found" in done.stderr, done


def test_exec_sees_the_containers_env_and_resolv_conf(
    sandbox: SandboxHarness, app: tuple[str, str]
) -> None:
    namespace, pod = app
    ip = client.CoreV1Api(sandbox.api_client()).read_namespaced_pod(pod, namespace).status.pod_ip
    done = sandbox.kubectl(
        "exec", "-n", namespace, pod, "--", "sh", "-c", "echo $POD_IP; cat /etc/resolv.conf"
    )
    first, *resolv = done.stdout.splitlines()
    assert first == ip
    dns = sandbox.plane.options.settings.cluster_dns[0]
    assert f"nameserver {dns}" in resolv, done.stdout


def test_exec_errors_are_upstreams(sandbox: SandboxHarness, app: tuple[str, str]) -> None:
    namespace, pod = app
    done = sandbox.kubectl("exec", "-n", namespace, pod, "-c", "nope", "--", "true", check=False)
    assert done.returncode == 1 and f"container nope is not valid for pod {pod}" in done.stderr
    done = sandbox.kubectl("exec", "-n", namespace, "ghost", "--", "true", check=False)
    assert done.returncode == 1 and 'pods "ghost" not found' in done.stderr, done
    done = sandbox.kubectl("exec", "-n", namespace, pod, "--", "no-such-binary", check=False)
    assert done.returncode != 0 and "executable file not found" in done.stderr, done


def on_terminal(
    sandbox: SandboxHarness,
    args: list[str],
    keys: tuple[bytes, ...] = (),
    size: tuple[int, int] = (33, 101),
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, str]:
    """Run kubectl with a terminal of `size` (rows, cols) as stdin and stdout, typing
    `keys` (each once the output so far is quiet); (exit code, what it printed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    process = subprocess.Popen(
        ["kubectl", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**sandbox.env(), **(env or {})},
        start_new_session=True,
    )
    os.close(slave)
    output, pending, deadline = b"", list(keys), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if pending:
                    os.write(master, pending.pop(0))
                elif process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: kubectl closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=10), output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_with_a_tty_has_a_terminal_sized_as_kubectls(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    script = "sleep 1; tty; stty size; exit 4"
    code, out = on_terminal(
        sandbox, ["exec", "-it", "-n", namespace, pod, "--", "sh", "-c", script], env=transport
    )
    assert code == 4, out
    assert re.search(r"/dev/pts/\d+\r\n33 101\r\n", out), out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_interactive_shell_on_a_tty(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    code, out = on_terminal(
        sandbox,
        ["exec", "-it", "-n", namespace, pod, "--", "sh"],
        keys=(b"echo $((6*7))\r", b"exit 5\r"),
        env=transport,
    )
    assert code == 5, out
    assert "\r\n42\r\n" in out, out


@pytest.fixture(params=[{}, SPDY_PORT_FORWARD], ids=["tunnelled", "spdy"])
def forwarded(
    sandbox: SandboxHarness, app: tuple[str, str], request: pytest.FixtureRequest
) -> Iterator[int]:
    """`kubectl port-forward svc-less pod :8080`; the local port it listens on. Both of
    kubectl's dialects: SPDY tunnelled in a WebSocket (1.31's default), plain SPDY."""
    namespace, pod = app
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, f"pod/{pod}", ":8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**sandbox.env(), **request.param},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], PORT_FORWARD_SECONDS)
        line = process.stdout.readline() if ready else ""
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, f"no forwarding line: {line!r}"
        yield int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_kubectl_port_forward_carries_http(forwarded: int) -> None:
    for _ in range(3):  # several connections over the one tunnel
        url = f"http://127.0.0.1:{forwarded}/health/ready"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    "transport", [pytest.param({}, id="tunnelled"), pytest.param(SPDY_PORT_FORWARD, id="spdy")]
)
def test_kubectl_port_forward_to_a_closed_port_says_why(
    sandbox: SandboxHarness, app: tuple[str, str], transport: dict[str, str]
) -> None:
    namespace, pod = app
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, f"pod/{pod}", ":9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**sandbox.env(), **transport},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.settimeout(10)
            assert conn.recv(100) == b""  # closed: nothing listens on the pod's port 9
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "connect: connection refused" in err, err


def test_python_client_exec(sandbox: SandboxHarness, app: tuple[str, str]) -> None:
    namespace, pod = app
    core = client.CoreV1Api(sandbox.api_client())
    output = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=["sh", "-c", "echo out; echo err >&2"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert sorted(output.splitlines()) == ["err", "out"]
    session = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=["sh", "-c", "read x; echo got $x; exit 3"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    session.write_stdin("value\n")
    session.run_forever(timeout=20)
    assert not session.is_open(), "the server did not close the stream when the command exited"
    assert session.read_stdout(timeout=1) == "got value\n"
    assert session.returncode == 3


def test_python_client_portforward(sandbox: SandboxHarness, app: tuple[str, str]) -> None:
    namespace, pod = app
    core = client.CoreV1Api(sandbox.api_client())
    forward = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports="8080")
    conn = forward.socket(8080)
    conn.settimeout(10)
    conn.sendall(b"GET /health/ready HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
    received = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        chunk = conn.recv(4096)
        if not chunk:
            break
        received += chunk
    conn.close()
    assert received.startswith(b"HTTP/1.1 200"), received
    assert forward.error(8080) is None


def test_exec_into_a_deployment_picks_its_pod(
    sandbox: SandboxHarness, app: tuple[str, str]
) -> None:
    namespace, pod = app
    done = sandbox.kubectl(
        "exec", "-n", namespace, "deploy/web", "--", "sh", "-c", "echo $HOSTNAME"
    )
    assert done.stdout == f"{pod}\n", done


def test_exec_into_a_virtual_container_is_refused(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    core = client.CoreV1Api(sandbox.api_client())
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "ghost"},
            "spec": {"containers": [{"name": "c", "image": "sandbox.local/virtual:latest"}]},
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod("ghost", namespace).status.phase == "Running",
        60,
        "the virtual pod to run",
    )
    done = sandbox.kubectl("exec", "-n", namespace, "ghost", "--", "true", check=False)
    assert done.returncode == 1 and 'container "c" of pod "ghost" is virtual' in done.stderr, done


def busybox_pod(
    sandbox: SandboxHarness,
    namespace: str,
    name: str,
    command: list[str],
    volumes: tuple[dict[str, Any], ...] = (),
    **container: Any,
) -> None:
    """A `restartPolicy: Never` pod (a busybox stand-in unless `image=`), once it runs."""
    core = client.CoreV1Api(sandbox.api_client())
    spec = {"name": "main", "image": "busybox:1.36", "command": command, **container}
    if not command:
        del spec["command"]
    pod_spec = {"containers": [spec], "restartPolicy": "Never", "volumes": list(volumes)}
    core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": pod_spec})
    wait_for(
        lambda: core.read_namespaced_pod(name, namespace).status.phase == "Running",
        60,
        f"{name} to run",
    )


def phase(sandbox: SandboxHarness, namespace: str, name: str) -> str:
    pod = client.CoreV1Api(sandbox.api_client()).read_namespaced_pod(name, namespace)
    return str(pod.status.phase)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_attach_streams_the_output_from_now_on(
    sandbox: SandboxHarness, transport: dict[str, str]
) -> None:
    namespace = sandbox.new_namespace()
    script = "echo early; sleep 4; echo late-1; sleep 1; echo late-2"
    busybox_pod(sandbox, namespace, "talker", ["sh", "-c", script])
    done = run_kubectl(sandbox, ["attach", "-n", namespace, "talker"], transport)
    assert (done.returncode, done.stdout) == (0, "late-1\nlate-2\n"), done
    wait_for(lambda: phase(sandbox, namespace, "talker") == "Succeeded", 30, "talker to end")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_attach_i_feeds_a_stdin_once_container(
    sandbox: SandboxHarness, transport: dict[str, str]
) -> None:
    namespace = sandbox.new_namespace()
    busybox_pod(sandbox, namespace, "reader", ["cat"], stdin=True, stdinOnce=True)
    args = ["attach", "-i", "-n", namespace, "reader"]
    done = run_kubectl(sandbox, args, transport, stdin="hello\nattach\n")
    assert (done.returncode, done.stdout) == (0, "hello\nattach\n"), done
    wait_for(lambda: phase(sandbox, namespace, "reader") == "Succeeded", 30, "cat to end")


def test_attach_i_without_stdin_once_leaves_the_container_running(
    sandbox: SandboxHarness,
) -> None:
    namespace = sandbox.new_namespace()
    busybox_pod(sandbox, namespace, "keeper", ["cat"], stdin=True)
    done = run_kubectl(sandbox, ["attach", "-i", "-n", namespace, "keeper"], {}, stdin="kept\n")
    assert (done.returncode, done.stdout) == (0, ""), done
    assert phase(sandbox, namespace, "keeper") == "Running"


def test_attach_to_a_virtual_container_is_refused(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    client.CoreV1Api(sandbox.api_client()).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "ghost"},
            "spec": {"containers": [{"name": "c", "image": "sandbox.local/virtual:latest"}]},
        },
    )
    wait_for(lambda: phase(sandbox, namespace, "ghost") == "Running", 60, "the virtual pod")
    done = sandbox.kubectl("attach", "-n", namespace, "ghost", check=False)
    assert done.returncode == 1 and "nothing to attach to" in done.stderr, done


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kubectl_cp_to_and_from_a_pods_volume(
    sandbox: SandboxHarness, transport: dict[str, str], tmp_path: Path
) -> None:
    """kubectl cp runs `tar` in the container through exec: the host's tar, in the
    container's mount namespace, where a real image's volumes are at their mountPath.
    (A busybox stand-in's volumes are under its own root directory instead, so cp does
    not find them there: README, "kubectl exec".)"""
    namespace = sandbox.new_namespace()
    busybox_pod(
        sandbox,
        namespace,
        "box",
        [],
        image="sandbox.local/testapp:latest",
        volumes=({"name": "data", "emptyDir": {}},),
        volumeMounts=[{"name": "data", "mountPath": "/mnt/data"}],
    )
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "note.txt").write_text("from the host\n")

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return run_kubectl(sandbox, ["-n", namespace, *args], transport)

    up = kubectl("cp", str(tmp_path / "up"), "box:/mnt/data/up")
    assert up.returncode == 0, up
    seen = kubectl("exec", "box", "--", "cat", "/mnt/data/up/note.txt")
    assert seen.stdout == "from the host\n", seen
    down = kubectl("cp", "box:/mnt/data/up", str(tmp_path / "down"))
    assert down.returncode == 0, down
    assert (tmp_path / "down" / "note.txt").read_text() == "from the host\n"
