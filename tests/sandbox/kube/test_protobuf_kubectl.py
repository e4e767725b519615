"""Real kubectl 1.32 sends protobuf bodies; the API server reads them as the JSON kubectl
would have sent.

The oracle is kubectl itself: `--dry-run=client -o json` prints the object the command
builds, and `--dry-run=server -o json` prints what the server made of the protobuf
body it was sent (the API server answers a dry-run create with the decoded object).
The two must be equal, apart from the namespace the server fills in.

`UPDATE_GOLDEN=1` also writes each request's bytes (from kubectl's `-v=9` hexdump) and
the client's JSON to `golden/protobuf/`, which `test_protobuf_decode.py` decodes
without kubectl.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.kube.protobuf import body as protobuf_body
from tests.sandbox.harness import ApiHarness

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
GOLDEN = Path(__file__).parent / "golden" / "protobuf"
GAMEDAY = Path(__file__).parents[3] / "deploy" / "gameday"
CLUSTER_SCOPED = {"Namespace", "ClusterRoleBinding"}
_HEX_LINE = re.compile(r"^\s*[0-9a-f]{8}\s+((?:[0-9a-f]{2} +)+)\|")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    harness = ApiHarness(tmp_path, watch_timeout_seconds=1.0)
    yield harness
    harness.close()


def last_request_body(stderr: str) -> bytes:
    """The bytes of the last request body kubectl's `-v=9` log printed as a hexdump."""
    dumps: list[bytes] = []
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if '"Request Body" body=<' not in line:
            continue
        chunk = bytearray()
        for dump_line in lines[index + 1 :]:
            match = _HEX_LINE.match(dump_line)
            if match is None:
                break
            assert "[truncated" not in dump_line, "the dump is cut short (-v=8 does that)"
            chunk.extend(bytes.fromhex(match.group(1)))
        dumps.append(bytes(chunk))
    assert dumps, "kubectl logged no request body"
    return dumps[-1]


CASES = [
    pytest.param(
        "deployment-zero-replicas",
        ("create", "deployment", "web", "--image=nginx:1.27", "--replicas=0", "--port=8080"),
        id="deployment-with-a-present-zero",
    ),
    pytest.param(
        "configmap",
        ("create", "configmap", "settings", "--from-literal=mode=chaos", "--from-file={blob}"),
        id="configmap-with-binary-data",
    ),
    pytest.param(
        "secret",
        ("create", "secret", "generic", "creds", "--from-literal=password=s3cret"),
        id="secret-bytes-map",
    ),
    pytest.param(
        "service-named-port",
        ("create", "service", "nodeport", "web", "--tcp=80:http"),
        id="service-int-or-string-as-string",
    ),
    pytest.param(
        "service-numbered-port",
        ("create", "service", "clusterip", "api", "--tcp=80:8080"),
        id="service-int-or-string-as-int",
    ),
    pytest.param(
        "job-from-cronjob",
        ("create", "job", "by-hand", "--from=cronjob/harmonyflow-gameday"),
        id="job-from-the-game-days-cronjob",
    ),
    pytest.param(
        "cronjob",
        ("create", "cronjob", "nightly", "--image=busybox", "--schedule=0 3 * * *"),
        id="cronjob",
    ),
    pytest.param(
        "role", ("create", "role", "reader", "--verb=get,list", "--resource=pods"), id="role"
    ),
    pytest.param(
        "rolebinding",
        ("create", "rolebinding", "rb", "--role=reader", "--user=alice", "--serviceaccount=x:y"),
        id="rolebinding",
    ),
    pytest.param(
        "clusterrolebinding",
        ("create", "clusterrolebinding", "crb", "--clusterrole=view", "--group=ops"),
        id="clusterrolebinding",
    ),
    pytest.param(
        "pdb-percent",
        ("create", "pdb", "web", "--selector=app=web", "--max-unavailable=50%"),
        id="pdb-percent",
    ),
    pytest.param(
        "ingress",
        ("create", "ingress", "web", "--rule=game.example/api*=web:8080,tls=web-cert"),
        id="ingress",
    ),
    pytest.param("serviceaccount", ("create", "serviceaccount", "runner"), id="serviceaccount"),
    pytest.param("namespace", ("create", "namespace", "chaos"), id="cluster-scoped-namespace"),
]


@pytest.mark.parametrize(("name", "args"), CASES)
def test_kubectl_protobuf_create_is_read_as_the_object_kubectl_built(
    api: ApiHarness, tmp_path: Path, name: str, args: tuple[str, ...]
) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xffchaos")
    namespace = "harmonyflow-gameday"
    api.kubectl(
        "apply",
        "--validate=false",
        "-f",
        str(GAMEDAY / "namespace.yaml"),
        "-f",
        str(GAMEDAY / "cronjob.yaml"),
    )
    command = [arg.format(blob=blob) for arg in args] + ["-n", namespace]
    client = json.loads(api.kubectl(*command, "--dry-run=client", "-o", "json").stdout)
    served = api.kubectl(*command, "--dry-run=server", "-o", "json", "-v=9", check=False)
    assert served.returncode == 0, served.stderr[-2000:]
    assert f"Content-Type: {protobuf_body.CONTENT_TYPE}" in served.stderr
    expected = json.loads(json.dumps(client))
    if client["kind"] not in CLUSTER_SCOPED:
        expected["metadata"].setdefault("namespace", namespace)
    assert json.loads(served.stdout) == expected
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        sent = last_request_body(served.stderr)
        (GOLDEN / f"{name}.hex").write_text(_hex_lines(sent))
        (GOLDEN / f"{name}.json").write_text(json.dumps(client, indent=2, sort_keys=True) + "\n")


def _hex_lines(data: bytes) -> str:
    return "".join(data[start : start + 32].hex(" ") + "\n" for start in range(0, len(data), 32))


# ---- the API server's answers to protobuf bodies (raw HTTPS, bytes kubectl sent) ----

# kubectl 1.32.4 `drain --grace-period=3` falling back to DELETE (no pods/eviction):
DRAIN_DELETE_OPTIONS = bytes.fromhex((GOLDEN / "drain-delete-options.hex").read_text())


def request(api: ApiHarness, method: str, path: str, data: bytes) -> tuple[int, dict[str, object]]:
    connection = api.connection()
    try:
        headers = {**api.auth_headers(), "Content-Type": protobuf_body.CONTENT_TYPE}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_protobuf_delete_options_body_sets_the_grace_period(api: ApiHarness) -> None:
    pod = {
        "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "x"}]},
    }
    api.on_loop(lambda: api.store.create("pods", pod))
    status, answer = request(
        api, "DELETE", "/api/v1/namespaces/default/pods/p1", DRAIN_DELETE_OPTIONS
    )
    assert status == 200, answer
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 3


@pytest.mark.parametrize(
    ("path", "data", "code", "message"),
    [
        pytest.param(
            "/apis/chaos-mesh.org/v1alpha1/namespaces/default/networkchaos",
            DRAIN_DELETE_OPTIONS,
            415,
            "the body of the request was in an unknown format",
            id="custom-resources-take-no-protobuf",
        ),
        pytest.param(
            "/api/v1/namespaces/default/configmaps",
            b"k8s\x00\x0a\x05ab",
            400,
            "the object provided is unrecognized (must be of type ConfigMap): unexpected EOF",
            id="truncated-envelope",
        ),
        pytest.param(
            "/api/v1/namespaces/default/configmaps",
            DRAIN_DELETE_OPTIONS,
            400,
            "the kind in the body (DeleteOptions) does not match ConfigMap",
            id="another-kind",
        ),
        pytest.param(
            "/api/v1/namespaces/default/configmaps",
            b'{"kind":"ConfigMap"}',
            400,
            "provided data does not appear to be a protobuf message",
            id="json-labelled-protobuf",
        ),
    ],
)
def test_bodies_the_server_cannot_take(
    api: ApiHarness, path: str, data: bytes, code: int, message: str
) -> None:
    status, answer = request(api, "POST", path, data)
    assert (status, answer["code"], answer["kind"]) == (code, code, "Status")
    assert message in str(answer["message"])
