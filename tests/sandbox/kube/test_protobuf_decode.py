"""Protobuf bodies to JSON: the .proto parser, the Go JSON shapes, the wire reader and the
decoder, on small hand-made bytes; then the bodies real kubectl sent (golden files
written by test_protobuf_kubectl.py) against the JSON kubectl printed for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.kube.goduration import format_go_duration as go_duration
from sandbox.kube.protobuf import body, gostructs, protofile, wire
from sandbox.kube.protobuf.schema import Schema, vendored
from sandbox.kube.protobuf.tojson import to_json
from sandbox.kube.protobuf.wire import WireError

GOLDEN = Path(__file__).parent / "golden" / "protobuf"
CORE, META = "k8s.io.api.core.v1", "k8s.io.apimachinery.pkg.apis.meta.v1"


# ---- a tiny encoder for readable cases: (field number, int | bytes | str) pairs ----


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def msg(*fields: tuple[int, int | bytes | str]) -> bytes:
    out = bytearray()
    for number, value in fields:
        if isinstance(value, int):
            out += varint(number << 3) + varint(value)
        else:
            data = value.encode() if isinstance(value, str) else value
            out += varint(number << 3 | 2) + varint(len(data)) + data
    return bytes(out)


def decode(name: str, data: bytes) -> Any:
    return to_json(vendored(), name, data)


# ---- the parser ----


def test_the_parser_resolves_names_from_the_innermost_scope_outwards() -> None:
    parsed = protofile.parse(
        """
        syntax = "proto2";
        package p.q;
        import "other.proto";
        option go_package = "x";
        /* a block comment */
        message Inner { optional string outer = 1; }
        message Outer {
          // the nested Inner shadows the package's
          message Inner { optional int32 nested = 1; }
          optional Inner here = 1;
          optional .p.q.Inner there = 2;
          required bool flag = 3 [default = false];
          map<string, Inner> byName = 4;
        }
        """
    )
    assert (parsed.package, parsed.imports) == ("p.q", ("other.proto",))
    fields = protofile.link([parsed])["p.q.Outer"].fields
    assert [(f.name, f.label, f.type, f.key_type) for f in fields.values()] == [
        ("here", "optional", "p.q.Outer.Inner", None),
        ("there", "optional", "p.q.Inner", None),
        ("flag", "optional", "bool", None),
        ("byName", "map", "p.q.Outer.Inner", "string"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "message M { enum E { A = 0; } }", "unsupported message element 'enum'", id="enum"
        ),
        pytest.param("service S {}", "unsupported statement 'service'", id="service"),
        pytest.param(
            "message M { optional Missing x = 1; }", "unknown type 'Missing'", id="unknown-type"
        ),
        pytest.param(
            "message M { optional string x = one; }", "expected a field number", id="bad-number"
        ),
        pytest.param(
            "message M { optional string x = 1;", "unexpected end of file", id="truncated"
        ),
        pytest.param(
            "message M { optional string x = 1; } @", "unexpected character '@'", id="junk"
        ),
    ],
)
def test_the_parser_refuses_what_it_does_not_know(text: str, message: str) -> None:
    with pytest.raises(protofile.ProtoSyntaxError, match=message):
        protofile.link([protofile.parse(text)])


def test_every_vendored_import_and_type_resolves() -> None:
    schema = vendored()
    assert f"{CORE}.PodSpec" in schema.messages
    assert schema.messages[f"{CORE}.Pod"].fields[1].type == f"{META}.ObjectMeta"


# ---- Go struct shapes ----

GO_SOURCE = """
type Thing struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Count string `json:"count" protobuf:"varint,9,opt,name=count"` (commented out)
	Count *int32 `json:"count,omitempty" protobuf:"varint,2,opt,name=count"`
	Name string `json:"name" protobuf:"bytes,3,opt,name=name"`
	Source Source `json:",inline" protobuf:"bytes,4,opt,name=source"`
	Items []string `json:"items,omitempty" patchStrategy:"merge" protobuf:"bytes,5,rep,name=items"`
	UID string `json:"uid,omitempty" protobuf:"bytes,6,opt,name=uID"`
}

type Source struct {
	Path string `json:"path,omitempty" protobuf:"bytes,1,opt,name=path"`
}

type Names []string
"""


@pytest.mark.parametrize(
    ("struct", "number", "expected"),
    [
        pytest.param("Thing", 1, ("metadata", False, True, False), id="embedded-meta"),
        pytest.param("Thing", 2, ("count", True, True, False), id="pointer"),
        pytest.param("Thing", 3, ("name", False, False, False), id="no-omitempty"),
        pytest.param("Thing", 4, ("", False, False, True), id="inline"),
        pytest.param("Thing", 5, ("items", False, True, False), id="other-tags-between"),
        pytest.param("Thing", 6, ("uid", False, True, False), id="json-name-not-proto-name"),
        pytest.param("Source", 1, ("path", False, True, False), id="second-struct"),
    ],
)
def test_go_fields_say_how_each_protobuf_field_prints(
    struct: str, number: int, expected: tuple[str, bool, bool, bool]
) -> None:
    structs, _ = gostructs.parse_go(GO_SOURCE)
    field = structs[struct].fields[number]
    assert (field.json_name, field.pointer, field.omitempty, field.inline) == expected


def test_go_kinds_embed_type_meta_and_named_slices_are_lists() -> None:
    structs, lists = gostructs.parse_go(GO_SOURCE)
    assert (structs["Thing"].is_kind, structs["Source"].is_kind) == (True, False)
    assert 9 not in structs["Thing"].fields
    assert lists == {"Names"}


# ---- the wire ----


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"\x08\x00", [(1, 0, 0)], id="varint-zero"),
        pytest.param(b"\x08" + b"\xff" * 9 + b"\x01", [(1, 0, 2**64 - 1)], id="ten-byte-varint"),
        pytest.param(b"\x11" + bytes(range(8)), [(2, 1, 0x0706050403020100)], id="fixed64"),
        pytest.param(b"\x1d\x01\x00\x00\x00", [(3, 5, 1)], id="fixed32"),
        pytest.param(b"\x22\x00\x22\x01x", [(4, 2, b""), (4, 2, b"x")], id="length-delimited"),
    ],
)
def test_wire_fields(data: bytes, expected: list[tuple[int, int, int | bytes]]) -> None:
    assert list(wire.fields(data)) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\x08", "unexpected EOF", id="varint-cut"),
        pytest.param(b"\x12\x05abc", "unexpected EOF", id="string-cut"),
        pytest.param(b"\x0b", "illegal wireType 3", id="group"),
        pytest.param(b"\x00\x00", "illegal tag 0", id="tag-zero"),
        pytest.param(b"\x08" + b"\xff" * 10, "integer overflow", id="varint-too-long"),
    ],
)
def test_wire_errors(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        list(wire.fields(data))


# ---- the JSON form ----

SECONDS_2026 = 1767225600  # 2026-01-01T00:00:00Z
TIMESTAMP = msg((1, SECONDS_2026), (2, 123456789))


@pytest.mark.parametrize(
    ("message", "data", "expected"),
    [
        pytest.param(
            "k8s.io.api.apps.v1.DeploymentSpec",
            msg((1, 0), (5, 0), (7, 0)),
            {"replicas": 0},
            id="pointer-zero-printed-omitempty-zero-not",
        ),
        pytest.param(
            "k8s.io.api.apps.v1.StatefulSetStatus",
            msg((2, 0), (3, 0)),
            {"replicas": 0},
            id="non-pointer-without-omitempty-printed",
        ),
        pytest.param(
            "k8s.io.api.apps.v1.DeploymentSpec",
            msg((1, -1)),
            {"replicas": -1},
            id="negative-int32",
        ),
        pytest.param(
            "k8s.io.api.apps.v1.DeploymentSpec",
            msg((1, 2), (1, 3)),
            {"replicas": 3},
            id="last-scalar-wins",
        ),
        pytest.param(
            "k8s.io.api.apps.v1.DeploymentSpec",
            msg((4, b"")),
            {"strategy": {}},
            id="empty-struct-printed",
        ),
        pytest.param(
            f"{META}.ObjectMeta",
            msg((1, "a"), (99, "ignored"), (11, msg((1, "k"), (2, "v")))),
            {"name": "a", "labels": {"k": "v"}},
            id="unknown-field-skipped-and-map",
        ),
        pytest.param(
            f"{META}.ObjectMeta",
            msg((8, b"")),
            {"creationTimestamp": None},
            id="zero-time-null",
        ),
        pytest.param(
            f"{META}.ObjectMeta",
            msg((8, TIMESTAMP)),
            {"creationTimestamp": "2026-01-01T00:00:00Z"},
            id="time-whole-seconds",
        ),
        pytest.param(
            f"{META}.ObjectMeta",
            msg((8, msg((1, 0)))),
            {"creationTimestamp": "1970-01-01T00:00:00Z"},
            id="time-epoch-is-not-zero",
        ),
        pytest.param(
            "k8s.io.api.coordination.v1.LeaseSpec",
            msg((3, TIMESTAMP), (4, b"")),
            {"acquireTime": "2026-01-01T00:00:00.123456Z", "renewTime": None},
            id="micro-time",
        ),
        pytest.param(
            f"{CORE}.ServicePort",
            msg((4, msg((1, 1), (3, "http")))),
            {"targetPort": "http"},
            id="int-or-string-string",
        ),
        pytest.param(
            f"{CORE}.ServicePort",
            msg((4, msg((1, 0), (2, 8080), (3, "")))),
            {"targetPort": 8080},
            id="int-or-string-int",
        ),
        pytest.param(
            f"{CORE}.ResourceRequirements",
            msg((1, msg((1, "cpu"), (2, msg((1, "500m")))))),
            {"limits": {"cpu": "500m"}},
            id="quantity-map",
        ),
        pytest.param(
            f"{CORE}.Secret",
            msg((2, msg((1, "k"), (2, b"\x00\xff"))), (5, 0)),
            {"data": {"k": "AP8="}, "immutable": False},
            id="bytes-base64-and-pointer-false",
        ),
        pytest.param(
            f"{CORE}.Volume",
            msg((1, "scratch"), (2, msg((2, b"")))),
            {"name": "scratch", "emptyDir": {}},
            id="inline-volume-source",
        ),
        pytest.param(
            "k8s.io.api.authentication.v1.BoundObjectReference",
            msg((3, "p"), (4, "u-1")),
            {"name": "p", "uid": "u-1"},
            id="json-name-from-go",
        ),
        pytest.param(
            "k8s.io.api.authentication.v1.UserInfo",
            msg((3, "a"), (3, "b"), (4, msg((1, "scopes"), (2, msg((1, "x"), (1, "y")))))),
            {"groups": ["a", "b"], "extra": {"scopes": ["x", "y"]}},
            id="named-slice-as-list",
        ),
        pytest.param(
            "k8s.io.api.apps.v1.ControllerRevision",
            msg((2, msg((1, b'{"spec":{"a":1}}'))), (3, 2)),
            {"data": {"spec": {"a": 1}}, "revision": 2},
            id="raw-extension-json",
        ),
        pytest.param(
            f"{META}.ManagedFieldsEntry",
            msg((1, "kubectl"), (7, msg((1, b'{"f:data":{}}')))),
            {"manager": "kubectl", "fieldsV1": {"f:data": {}}},
            id="fields-v1-json",
        ),
        pytest.param(
            f"{CORE}.LinuxContainerUser",
            msg((3, 5), (3, bytes([6, 0x80, 0x01]))),
            {"supplementalGroups": [5, 6, 128]},
            id="packed-and-unpacked-repeated",
        ),
        pytest.param(
            f"{CORE}.PodSpec",
            msg((2, msg((1, "a"))), (2, msg((1, "b")))),
            {"containers": [{"name": "a"}, {"name": "b"}]},
            id="repeated-messages",
        ),
        pytest.param(
            f"{CORE}.Pod",
            msg((1, msg((1, "a"))), (1, msg((3, "ns")))),
            {"metadata": {"name": "a", "namespace": "ns"}},
            id="message-chunks-merge",
        ),
    ],
)
def test_messages_print_as_go_prints_their_structs(
    message: str, data: bytes, expected: dict[str, Any]
) -> None:
    assert decode(message, data) == expected


@pytest.mark.parametrize(
    ("message", "data", "error"),
    [
        pytest.param(
            f"{META}.ObjectMeta",
            msg((1, 5)),
            "wrong wireType = 0 for field name",
            id="string-as-varint",
        ),
        pytest.param(
            f"{CORE}.PodSpec",
            msg((2, 7)),
            "wrong wireType = 0 for field containers",
            id="message-as-varint",
        ),
        pytest.param(
            "k8s.io.api.apps.v1.ControllerRevision",
            msg((2, msg((1, b"\x0a")))),
            "not JSON",
            id="raw-not-json",
        ),
    ],
)
def test_malformed_messages_are_errors(message: str, data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        decode(message, data)


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [
        pytest.param(0, "0s", id="zero"),
        pytest.param(1, "1ns", id="ns"),
        pytest.param(1500, "1.5µs", id="us"),
        pytest.param(100_000_000, "100ms", id="ms"),
        pytest.param(1_500_000_000, "1.5s", id="fractional-seconds"),
        pytest.param(61 * 10**9, "1m1s", id="minutes"),
        pytest.param(3600 * 10**9, "1h0m0s", id="hours"),
        pytest.param(-(90 * 10**9), "-1m30s", id="negative"),
    ],
)
def test_durations_print_as_go(nanoseconds: int, expected: str) -> None:
    assert go_duration(nanoseconds) == expected
    assert decode(f"{META}.Duration", msg((1, nanoseconds))) == expected


# ---- the envelope ----


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return body.MAGIC + msg((1, msg((1, api_version), (2, kind))), (2, raw))


def test_a_missing_kind_and_version_are_the_endpoints() -> None:
    raw = msg((1, msg((1, "settings"))), (2, msg((1, "k"), (2, "v"))))
    decoded = body.decode(envelope("", "", raw), "v1", "ConfigMap")
    assert decoded == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "settings"},
        "data": {"k": "v"},
    }


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(b'{"kind":"Pod"}', "does not appear to be a protobuf message", id="json"),
        pytest.param(body.MAGIC, "empty body", id="magic-only"),
        pytest.param(
            envelope("v1", "ObjectMeta", b""),
            'no kind "ObjectMeta" is registered for version "v1"',
            id="not-a-kind",
        ),
        pytest.param(
            envelope("chaos-mesh.org/v1alpha1", "NetworkChaos", b""),
            'no kind "NetworkChaos"',
            id="custom-resource",
        ),
        pytest.param(
            envelope("apps/v1", "Deployment", b"\x0a\x05ab"),
            "unexpected EOF",
            id="truncated-object",
        ),
        pytest.param(body.MAGIC + b"\x0a\x05ab", "unexpected EOF", id="truncated-envelope"),
    ],
)
def test_bodies_that_are_no_registered_object(data: bytes, error: str) -> None:
    with pytest.raises(body.DecodeError, match=error):
        body.decode(data, "v1", "Pod")


def test_kinds_resolve_by_group_and_version() -> None:
    schema: Schema = vendored()
    found = {
        (api_version, kind): (
            message.full_name if (message := schema.kind(api_version, kind)) else None
        )
        for api_version, kind in [
            ("v1", "Pod"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("apiregistration.k8s.io/v1", "APIService"),
            ("autoscaling/v1", "Scale"),
            ("batch/v1", "DeleteOptions"),
            ("v1", "Status"),
            ("batch/v1", "Status"),
            ("apps/v2", "Deployment"),
        ]
    }
    assert found == {
        ("v1", "Pod"): f"{CORE}.Pod",
        ("rbac.authorization.k8s.io/v1", "ClusterRole"): "k8s.io.api.rbac.v1.ClusterRole",
        ("apiregistration.k8s.io/v1", "APIService"): (
            "k8s.io.kube_aggregator.pkg.apis.apiregistration.v1.APIService"
        ),
        ("autoscaling/v1", "Scale"): "k8s.io.api.autoscaling.v1.Scale",
        ("batch/v1", "DeleteOptions"): f"{META}.DeleteOptions",
        ("v1", "Status"): f"{META}.Status",
        ("batch/v1", "Status"): None,
        ("apps/v2", "Deployment"): None,
    }


# ---- what real kubectl sent ----


@pytest.mark.parametrize("name", sorted(path.stem for path in GOLDEN.glob("*.hex")))
def test_kubectls_bodies_decode_to_the_object_kubectl_printed(name: str) -> None:
    sent = bytes.fromhex((GOLDEN / f"{name}.hex").read_text())
    printed = json.loads((GOLDEN / f"{name}.json").read_text())
    assert body.decode(sent, printed["apiVersion"], printed["kind"]) == printed


def test_there_are_golden_bodies() -> None:
    assert len(list(GOLDEN.glob("*.hex"))) >= 10
