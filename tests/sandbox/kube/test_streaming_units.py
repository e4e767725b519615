"""Pure parts of exec and port-forward: channel frames, queries, targets, SPDY framing."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct
import termios
import zlib
from typing import Any

import pytest

from sandbox.kube import discovery
from sandbox.kube.errors import ApiError
from sandbox.kube.streaming import (
    attach,
    handler,
    options,
    spdy,
    spdystreams,
    targets,
    tty,
    wiring,
    wsframes,
)

V4, V5 = wsframes.V4, wsframes.V5


@pytest.mark.parametrize(
    ("message", "protocol", "expected"),
    [
        pytest.param(b"\x00hi", V5, wsframes.Data(0, b"hi"), id="stdin-data"),
        pytest.param(b"\x04{}", V4, wsframes.Data(4, b"{}"), id="resize"),
        pytest.param(b"\xff\x00", V5, wsframes.CloseChannel(0), id="v5-close-stdin"),
        pytest.param(b"\xff\x00", V4, wsframes.Data(255, b"\x00"), id="v4-has-no-close"),
        pytest.param(b"", V5, wsframes.Ignored("empty message"), id="empty"),
        pytest.param(
            b"\xff", V5, wsframes.Ignored("close signal with 0 bytes instead of 1"), id="short"
        ),
        pytest.param(b"\x01", V5, wsframes.Data(1, b""), id="channel-only"),
    ],
)
def test_decode(message: bytes, protocol: str, expected: wsframes.Frame) -> None:
    assert wsframes.decode(message, protocol) == expected


def test_encode_prefixes_the_channel_and_refuses_the_close_byte() -> None:
    assert wsframes.encode(wsframes.ERROR, b"{}") == b"\x03{}"
    with pytest.raises(ValueError):
        wsframes.encode(255, b"")


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        pytest.param("binary", b"\x00x", b"\x00x", id="binary"),
        pytest.param("text", "\x00x", b"\x00x", id="python-client-text-stdin"),
        pytest.param("", b"", None, id="control"),
    ],
)
def test_message_bytes(kind: str, data: Any, expected: bytes | None) -> None:
    assert wsframes.message_bytes(kind, data) == expected


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        pytest.param([V5, V4, "v3.channel.k8s.io"], V5, id="kubectl-prefers-v5"),
        pytest.param(["v3.channel.k8s.io", V4], V4, id="first-supported"),
        pytest.param(["channel.k8s.io"], None, id="none"),
        pytest.param([], None, id="no-protocol"),
    ],
)
def test_choose_protocol(offered: list[str], expected: str | None) -> None:
    assert wsframes.choose_protocol(offered, (V5, V4)) == expected


def test_offered_protocols_splits_the_header() -> None:
    assert wsframes.offered_protocols(f"{V5}, {V4}") == [V5, V4]
    assert wsframes.offered_protocols(None) == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(0, {"metadata": {}, "status": "Success"}, id="success"),
        pytest.param(
            3,
            {
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: exit status 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            },
            id="exit-3",
        ),
    ],
)
def test_exit_status(code: int, expected: dict[str, Any]) -> None:
    assert wsframes.exit_status(code) == expected


def test_port_prefix_is_little_endian() -> None:
    assert wsframes.port_prefix(8080) == bytes([0x90, 0x1F])


# ---- queries ----


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"command": ["echo", "hi"], "stdout": ["true"], "stderr": ["true"]},
            options.ExecOptions(("echo", "hi"), None, False, True, True, False),
            id="kubectl-exec",
        ),
        pytest.param(
            {"command": ["sh"], "stdin": ["true"], "stdout": ["1"], "container": ["web"]},
            options.ExecOptions(("sh",), "web", True, True, False, False),
            id="stdin-and-container",
        ),
        pytest.param(
            {
                "command": ["sh"],
                "stdin": ["true"],
                "stdout": ["true"],
                "stderr": ["true"],
                "tty": ["true"],
            },
            options.ExecOptions(("sh",), None, True, True, False, True),
            id="tty-has-no-stderr",
        ),
        pytest.param(
            {"command": ["ls"], "stdout": ["false"], "stderr": ["true"]},
            options.ExecOptions(("ls",), None, False, False, True, False),
            id="false-is-false",
        ),
    ],
)
def test_parse_exec(query: options.Query, expected: options.ExecOptions) -> None:
    assert options.parse_exec(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param({"stdout": ["true"]}, "you must specify a command", id="no-command"),
        pytest.param(
            {"command": ["ls"]},
            "you must specify at least 1 of stdin, stdout, stderr",
            id="no-streams",
        ),
    ],
)
def test_parse_exec_refuses(query: options.Query, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        options.parse_exec(query)
    assert (caught.value.code, caught.value.message) == (400, message)


@pytest.mark.parametrize(
    ("query", "ports"),
    [
        pytest.param({"ports": ["8080"]}, (8080,), id="one"),
        pytest.param({"ports": ["8080,9090"]}, (8080, 9090), id="comma"),
        pytest.param({"ports": ["80"], "port": ["81"]}, (80, 81), id="repeated"),
        pytest.param({}, (), id="none-spdy-sends-them-per-stream"),
    ],
)
def test_parse_port_forward(query: options.Query, ports: tuple[int, ...]) -> None:
    assert options.parse_port_forward(query).ports == ports


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("http", id="name"),
        pytest.param("0", id="zero"),
        pytest.param("70000", id="too-big"),
    ],
)
def test_parse_port_forward_refuses(value: str) -> None:
    with pytest.raises(ApiError) as caught:
        options.parse_port_forward({"ports": [value]})
    assert caught.value.code == 400


# ---- targets ----


def make_pod(*containers: str, phase: str = "Running", ip: str = "127.0.2.7") -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
        "spec": {"containers": [{"name": c} for c in containers]},
        "status": {"phase": phase, "podIP": ip},
    }


@pytest.mark.parametrize(
    ("pod", "requested", "expected"),
    [
        pytest.param(make_pod("web"), None, "web", id="only-one"),
        pytest.param(make_pod("web", "side"), "side", "side", id="named"),
        pytest.param(
            make_pod("web", "side"),
            None,
            "a container name must be specified for pod web-1, choose one of: [web side]",
            id="several-unnamed",
        ),
        pytest.param(
            make_pod("web"), "nope", "container nope is not valid for pod web-1", id="unknown"
        ),
        pytest.param(
            make_pod("web", phase="Succeeded"),
            "web",
            "cannot exec into a container in a completed pod; current phase is Succeeded",
            id="completed",
        ),
    ],
)
def test_choose_container(pod: dict[str, Any], requested: str | None, expected: str) -> None:
    try:
        assert targets.choose_container(pod, requested) == expected
    except ApiError as error:
        assert (error.code, error.message) == (400, expected)


@pytest.mark.parametrize(
    ("process", "expected"),
    [
        pytest.param(targets.ContainerProcess(4242), 4242, id="running"),
        pytest.param(targets.ContainerProcess(None), 'container not found ("web")', id="not-run"),
        pytest.param(None, 'container not found ("web")', id="no-node"),
        pytest.param(targets.ContainerProcess(None, virtual=True), "is virtual", id="virtual"),
    ],
)
def test_running_pid(process: targets.ContainerProcess | None, expected: int | str) -> None:
    try:
        assert targets.running_pid(make_pod("web"), "web", process) == expected
    except ApiError as error:
        assert error.code == 400 and str(expected) in error.message


def test_pod_ip_only_when_running() -> None:
    assert targets.pod_ip(make_pod("web")) == "127.0.2.7"
    with pytest.raises(ApiError, match=r"pod is not running\. Current status=Pending"):
        targets.pod_ip(make_pod("web", phase="Pending"))


# ---- upgrades ----


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        pytest.param({"connection": "Upgrade", "upgrade": "websocket"}, "websocket", id="ws"),
        pytest.param(
            {"connection": "keep-alive, Upgrade", "upgrade": "WebSocket"}, "websocket", id="ws-list"
        ),
        pytest.param({"connection": "Upgrade", "upgrade": "SPDY/3.1"}, "spdy", id="spdy"),
        pytest.param({"upgrade": "websocket"}, "", id="no-connection-upgrade"),
        pytest.param({}, "", id="plain"),
    ],
)
def test_upgrade_kind(headers: dict[str, str], kind: str) -> None:
    assert handler.upgrade_kind(headers) == kind


@pytest.mark.parametrize(
    ("kind", "offered", "message"),
    [
        pytest.param("websocket", [V5], None, id="ok"),
        pytest.param("", [], "Upgrade request required", id="plain"),
        pytest.param("websocket", ["channel.k8s.io"], "not supported", id="old-protocol"),
    ],
)
def test_check_upgrade(kind: str, offered: list[str], message: str | None) -> None:
    if message is None:
        handler.check_upgrade(kind, offered, (V5, V4))
        return
    with pytest.raises(ApiError) as caught:
        handler.check_upgrade(kind, offered, (V5, V4))
    assert caught.value.code == 400 and message in caught.value.message


@pytest.mark.parametrize(
    ("offered", "code", "expected"),
    [
        pytest.param(["v4.channel.k8s.io,v3.channel.k8s.io"], 200, V4, id="kubectl's offers"),
        pytest.param(["v3.channel.k8s.io", "v4.channel.k8s.io"], 200, V4, id="repeated header"),
        pytest.param([], 400, "does not exist in request", id="no offer"),
        pytest.param(["v2.channel.k8s.io"], 403, "unable to negotiate protocol", id="no match"),
    ],
)
def test_spdy_protocol_is_negotiated_as_the_kubelet_does(
    offered: list[str], code: int, expected: str
) -> None:
    if code == 200:
        assert handler.spdy_protocol(offered, spdystreams.PROTOCOLS) == expected
        return
    with pytest.raises(ApiError) as caught:
        handler.spdy_protocol(offered, spdystreams.PROTOCOLS)
    assert caught.value.code == code and expected in caught.value.message


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param((False, True, True, False), {"error", "stdout", "stderr"}, id="exec"),
        pytest.param(
            (True, True, False, True), {"error", "stdin", "stdout", "resize"}, id="exec -it"
        ),
        pytest.param((True, True, True, True), {"error", "stdin", "stdout", "resize"}, id="tty"),
    ],
)
def test_the_streams_a_spdy_session_waits_for(
    flags: tuple[bool, bool, bool, bool], expected: set[str]
) -> None:
    assert spdystreams.expected_streams(*flags) == expected


def test_a_spdy_session_replies_to_each_stream_and_buffers_stdin_until_started() -> None:
    async def body() -> None:
        pipe = RecordingPipe()
        session = spdystreams.Session(pipe, spdystreams.expected_streams(True, True, False, False))
        for stream_id, kind in ((1, "error"), (3, "stdin"), (5, "stdout")):
            await session.on_frame(spdy.SynStream(stream_id, False, {"streamtype": [kind]}))
        assert session.ready.is_set()
        await session.on_frame(spdy.DataFrame(3, True, b"hi"))
        received: list[bytes] = []
        closed: list[bool] = []

        async def write(data: bytes) -> None:
            received.append(data)

        ended: asyncio.Future[wiring.Outcome] = asyncio.get_running_loop().create_future()
        target = wiring.Wiring((), ended, lambda: None, write, lambda: closed.append(True))
        await session.connect(target)
        assert (received, closed) == ([b"hi"], [True])
        await session.finish(wiring.Outcome(3))
        frames = spdy.Parser().feed(b"".join(pipe.written[3:]))
        assert frames[0] == spdy.DataFrame(5, True, b"")
        assert isinstance(frames[1], spdy.DataFrame) and frames[1].stream_id == 1
        assert json.loads(frames[1].data)["reason"] == "NonZeroExitCode"
        assert isinstance(frames[2], spdy.GoAway)

    asyncio.run(body())


class RecordingPipe:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def read(self) -> bytes:
        return b""

    async def write(self, data: bytes) -> None:
        self.written.append(data)

    @property
    def closed(self) -> bool:
        return False


def test_discovery_lists_the_streaming_subresources_as_upstream() -> None:
    document = discovery.resource_list("", "v1")
    assert document is not None
    entries = {e["name"]: e for e in document["resources"]}
    for name, kind in (
        ("pods/exec", "PodExecOptions"),
        ("pods/attach", "PodAttachOptions"),
        ("pods/portforward", "PodPortForwardOptions"),
    ):
        assert entries[name]["kind"] == kind
        assert entries[name]["verbs"] == ["create", "get"]


# ---- SPDY/3.1 ----


def client_syn_stream(
    deflate: Any, stream_id: int, headers: dict[str, str], fin: bool = False
) -> bytes:
    """A SYN_STREAM as spdystream writes it (its own compressor, the SPDY dictionary)."""
    block = spdy.encode_header_block({k: [v] for k, v in headers.items()})
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">IIH", stream_id, 0, 0) + compressed
    return spdy.control_frame(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0, body)


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_parser_reads_syn_streams_sharing_one_zlib_context_in_any_chunking() -> None:
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    stream = client_syn_stream(
        deflate, 1, {"streamtype": "error", "port": "8080", "requestid": "0"}
    ) + client_syn_stream(deflate, 3, {"streamtype": "data", "port": "8080", "requestid": "0"})
    stream += spdy.data_frame(3, b"GET /", fin=False) + spdy.ping(1) + spdy.rst_stream(3, 5)
    parser = spdy.Parser()
    frames = [frame for byte in stream for frame in parser.feed(bytes([byte]))]
    assert frames == [
        spdy.SynStream(1, False, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}),
        spdy.SynStream(3, False, {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}),
        spdy.DataFrame(3, False, b"GET /"),
        spdy.Ping(1),
        spdy.RstStream(3, 5),
    ]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param(spdy.data_frame(5, b"", fin=True), spdy.DataFrame(5, True, b""), id="fin"),
        pytest.param(spdy.goaway(7), spdy.GoAway(7), id="goaway"),
        pytest.param(
            spdy.control_frame(spdy.SETTINGS, 0, struct.pack(">I", 0)),
            spdy.Other(spdy.SETTINGS),
            id="settings-ignored",
        ),
        pytest.param(
            spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, 100)),
            spdy.Other(spdy.WINDOW_UPDATE),
            id="window-update-ignored",
        ),
    ],
)
def test_parser_frames(frame: bytes, expected: spdy.Frame) -> None:
    assert spdy.Parser().feed(frame) == [expected]


def test_parser_refuses_another_version() -> None:
    frame = bytearray(spdy.ping(1))
    frame[1] = 2
    with pytest.raises(spdy.ProtocolError, match="SPDY version 2"):
        spdy.Parser().feed(bytes(frame))


def test_syn_replies_decode_with_the_clients_context() -> None:
    writer, inflate = spdy.Writer(), zlib.decompressobj(zdict=spdy.DICTIONARY)
    for stream_id in (1, 3):
        frame = writer.syn_reply(stream_id)
        version, frame_type, flags_length = struct.unpack(">HHI", frame[:8])
        assert (version, frame_type) == (0x8003, spdy.SYN_REPLY)
        assert flags_length == len(frame) - 8
        assert struct.unpack(">I", frame[8:12]) == (stream_id,)
        assert spdy.decode_header_block(inflate.decompress(frame[12:])) == {}


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b'{"Width":80,"Height":24}'], [(80, 24)], id="one size"),
        pytest.param(
            [b'{"Width":80,"Hei', b'ght":24}{"Width":100,"Height":30}'],
            [(80, 24), (100, 30)],
            id="a value split across frames, then two in one",
        ),
        pytest.param(
            [b'{"Width":-1,"Height":24} {"Width":1,"Height":2}'], [(1, 2)], id="bad skipped"
        ),
        pytest.param([b'[1,2]\n{"Width":3,"Height":4}'], [(3, 4)], id="not an object skipped"),
        pytest.param([b'{"Width":"80","Height":24}'], [], id="strings are not sizes"),
    ],
)
def test_the_resize_stream_is_decoded_as_consecutive_json_values(
    chunks: list[bytes], expected: list[tuple[int, int]]
) -> None:
    decoder = tty.ResizeDecoder()
    sizes = [size for chunk in chunks for size in decoder.feed(chunk)]
    assert [(s.width, s.height) for s in sizes] == expected


def test_a_size_reaches_the_terminal_as_rows_and_columns() -> None:
    master, slave = os.openpty()
    try:
        tty.set_size(master, tty.TerminalSize(width=101, height=33))
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, bytes(8)))
        assert (rows, cols) == (33, 101)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"stdout": ["true"], "stderr": ["true"]},
            options.AttachOptions(None, False, True, True, False),
            id="kubectl attach",
        ),
        pytest.param(
            {"container": ["c"], "stdin": ["true"], "stdout": ["true"], "tty": ["true"]},
            options.AttachOptions("c", True, True, False, True),
            id="kubectl attach -it -c c",
        ),
        pytest.param(
            {"stdout": ["true"], "stderr": ["true"], "tty": ["true"]},
            options.AttachOptions(None, False, True, False, True),
            id="a tty has no separate stderr",
        ),
    ],
)
def test_parse_attach(query: options.Query, expected: options.AttachOptions) -> None:
    assert options.parse_attach(query) == expected


def test_parse_attach_needs_a_stream() -> None:
    with pytest.raises(ApiError, match="you must specify at least 1 of stdin, stdout, stderr"):
        options.parse_attach({"container": ["c"]})


@pytest.mark.parametrize(
    ("spec", "ends"),
    [
        pytest.param({"stdin": True}, True, id="stdin: the session ends, the container runs on"),
        pytest.param({"stdin": True, "stdinOnce": True}, False, id="stdinOnce closes its stdin"),
        pytest.param(
            {"stdin": True, "stdinOnce": True, "tty": True}, True, id="stdinOnce with a tty"
        ),
    ],
)
def test_what_closing_stdin_does(spec: dict[str, Any], ends: bool) -> None:
    assert attach.ends_session_on_stdin_close(spec) is ends


class FakeContainer:
    """The runtime's Attachments as a recording fake."""

    def __init__(self) -> None:
        self.stdin = None
        self.listeners: list[Any] = []
        self.stdin_closed = False

    def listen(self, listener: Any) -> Any:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def close_stdin(self) -> None:
        self.stdin_closed = True


def test_attach_sees_output_from_now_on_and_ends_with_the_container() -> None:
    async def body() -> None:
        container = FakeContainer()
        session = attach.wire(
            options.AttachOptions(stdout=True, stderr=True), {"name": "c"}, container
        )
        for listener in container.listeners:
            listener("stdout", b"out")
            listener("stderr", b"err")
            listener("stdout", None)
        assert not session.ended.done()
        container.listeners[0]("stderr", None)
        assert session.ended.result() == wiring.Outcome(0)
        (stdout, _), (stderr, _) = session.outputs
        assert (await stdout.read(), await stderr.read()) == (b"out", b"err")
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
        assert container.listeners == []  # detached

    asyncio.run(body())


def test_stdin_once_hands_the_close_to_the_container() -> None:
    async def body() -> None:
        container = FakeContainer()
        spec = {"stdin": True, "stdinOnce": True}
        session = attach.wire(options.AttachOptions(stdin=True, stdout=True), spec, container)
        session.close_stdin()
        assert container.stdin_closed and not session.ended.done()

    asyncio.run(body())
