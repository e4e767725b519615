"""Pod volumes as the kubelet's plugins set them up: files, modes, errors, the on-disk layout."""

from __future__ import annotations

import base64
import doctest
import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock
from sandbox.kube.errors import not_found
from sandbox.kube.kubelet import volumes as volumes_module
from sandbox.kube.kubelet.env import PodFacts
from sandbox.kube.kubelet.serviceaccount import TokenRequest
from sandbox.kube.kubelet.volumefs import (
    refresh_volume,
    remove_volumes,
    write_volume,
    write_volumes,
)
from sandbox.kube.kubelet.volumes import (
    MountVolumeError,
    VolumeFile,
    VolumePlan,
    format_map,
    layout,
    mount_retry_delay,
    path_problem,
    plan_pod_volumes,
    plan_volume,
)
from sandbox.kube.store import Store

FACTS = PodFacts(
    "web-1",
    "shop",
    "uid-1",
    "node-a",
    "",
    "127.0.1.10",
    labels={"app": "web", "tier": "front"},
    annotations={"note": 'say "hi"'},
)
OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("configmaps", "settings"): {
        "metadata": {"namespace": "shop"},
        "data": {"greeting": "hello\n", "mode": "fast"},
        "binaryData": {"logo.bin": base64.b64encode(b"\x00\x01").decode()},
    },
    ("secrets", "creds"): {
        "metadata": {"namespace": "shop"},
        "data": {"token": base64.b64encode(b"s3cr3t").decode()},
    },
    ("configmaps", "kube-root-ca.crt"): {
        "metadata": {"namespace": "shop"},
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n"},
    },
}
NOW = datetime(2026, 12, 6, 10, 11, 12, 345678, tzinfo=UTC)


def lookup(resource: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((resource, name))


def files(plan: VolumePlan | None) -> list[tuple[str, bytes, int]]:
    assert plan is not None
    return [(f.path, f.data, f.mode) for f in plan.files]


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        pytest.param(
            {"name": "v", "configMap": {"name": "settings"}},
            [
                ("greeting", b"hello\n", 0o644),
                ("logo.bin", b"\x00\x01", 0o644),
                ("mode", b"fast", 0o644),
            ],
            id="configmap-every-key-data-and-binary",
        ),
        pytest.param(
            {
                "name": "v",
                "configMap": {
                    "name": "settings",
                    "defaultMode": 0o440,
                    "items": [
                        {"key": "greeting", "path": "msg/greeting.txt"},
                        {"key": "mode", "path": "mode", "mode": 0o600},
                    ],
                },
            },
            [("mode", b"fast", 0o600), ("msg/greeting.txt", b"hello\n", 0o440)],
            id="configmap-items-paths-and-modes",
        ),
        pytest.param(
            {"name": "v", "configMap": {"name": "missing", "optional": True}},
            [],
            id="optional-missing-configmap-is-empty",
        ),
        pytest.param(
            {
                "name": "v",
                "configMap": {
                    "name": "settings",
                    "optional": True,
                    "items": [{"key": "nope", "path": "n"}, {"key": "mode", "path": "m"}],
                },
            },
            [("m", b"fast", 0o644)],
            id="optional-missing-key-is-left-out",
        ),
        pytest.param(
            {"name": "v", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            [("token", b"s3cr3t", 0o400)],
            id="secret-decoded-with-default-mode",
        ),
        pytest.param(
            {
                "name": "v",
                "secret": {"secretName": "creds", "items": [{"key": "token", "path": "t"}]},
            },
            [("t", b"s3cr3t", 0o644)],
            id="secret-items",
        ),
        pytest.param(
            {
                "name": "v",
                "downwardAPI": {
                    "items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                    ]
                },
            },
            [
                ("app", b"web", 0o644),
                ("labels", b'app="web"\ntier="front"', 0o644),
                ("name", b"web-1", 0o644),
            ],
            id="downward-api-fields-and-whole-labels",
        ),
        pytest.param(
            {
                "name": "v",
                "projected": {
                    "defaultMode": 0o444,
                    "sources": [
                        {
                            "configMap": {
                                "name": "settings",
                                "items": [{"key": "mode", "path": "cfg/mode"}],
                            }
                        },
                        {"secret": {"name": "creds"}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                ]
                            }
                        },
                    ],
                },
            },
            [("cfg/mode", b"fast", 0o444), ("ns", b"shop", 0o444), ("token", b"s3cr3t", 0o444)],
            id="projected-merges-its-sources",
        ),
        pytest.param({"name": "v", "emptyDir": {}}, [], id="empty-dir"),
    ],
)
def test_volume_files(volume: dict[str, Any], expected: list[tuple[str, bytes, int]]) -> None:
    assert files(plan_volume(volume, lookup, FACTS)) == expected


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        pytest.param(
            {"name": "cfg", "configMap": {"name": "y"}},
            'MountVolume.SetUp failed for volume "cfg" : configmap "y" not found',
            id="missing-configmap",
        ),
        pytest.param(
            {"name": "s", "secret": {"secretName": "y"}},
            'MountVolume.SetUp failed for volume "s" : secret "y" not found',
            id="missing-secret",
        ),
        pytest.param(
            {
                "name": "cfg",
                "configMap": {"name": "settings", "items": [{"key": "k", "path": "k"}]},
            },
            'MountVolume.SetUp failed for volume "cfg" : '
            "configmap references non-existent config key: k",
            id="missing-configmap-key",
        ),
        pytest.param(
            {"name": "s", "secret": {"secretName": "creds", "items": [{"key": "k", "path": "k"}]}},
            'MountVolume.SetUp failed for volume "s" : references non-existent secret key: k',
            id="missing-secret-key",
        ),
        pytest.param(
            {
                "name": "p",
                "projected": {
                    "sources": [{"configMap": {"name": "a"}}, {"secret": {"name": "b"}}],
                },
            },
            'MountVolume.SetUp failed for volume "p" : '
            '[configmap "a" not found, secret "b" not found]',
            id="projected-reports-every-failing-source",
        ),
        pytest.param(
            {
                "name": "cfg",
                "configMap": {"name": "settings", "items": [{"key": "mode", "path": "../x"}]},
            },
            'MountVolume.SetUp failed for volume "cfg" : '
            "invalid path: must not contain '..': ../x",
            id="escaping-item-path",
        ),
        pytest.param(
            {
                "name": "d",
                "downwardAPI": {
                    "items": [{"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]
                },
            },
            'MountVolume.SetUp failed for volume "d" : the sandbox serves only fieldRef in '
            "downward API volumes, not ['path', 'resourceFieldRef'] (item cpu)",
            id="resource-field-ref-not-served",
        ),
    ],
)
def test_volume_errors_are_the_kubelets_failed_mount(volume: dict[str, Any], message: str) -> None:
    with pytest.raises(MountVolumeError) as caught:
        plan_volume(volume, lookup, FACTS)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "volume",
    [
        pytest.param({"name": "h", "hostPath": {"path": "/etc"}}, id="host-path"),
        pytest.param(
            {
                "name": "kube-api-access-abcde",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                    ]
                },
            },
            id="service-account-token-without-an-issuer",
        ),
    ],
)
def test_volumes_the_sandbox_does_not_materialize(volume: dict[str, Any]) -> None:
    assert plan_volume(volume, lookup, FACTS) is None
    planned = plan_pod_volumes([volume], lookup, FACTS)
    assert (planned.plans, planned.errors, planned.skipped) == ((), (), (volume["name"],))


def admitted_api_access_volume() -> dict[str, Any]:
    """The `kube-api-access-*` volume the ServiceAccount admission gives a pod."""
    store = Store(ManualClock())
    store.create("namespaces", {"metadata": {"name": "shop"}})
    pod = store.create(
        "pods",
        {
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "a", "image": "busybox"}]},
        },
    )
    volume: dict[str, Any] = pod["spec"]["volumes"][0]
    assert volume["name"].startswith("kube-api-access-")
    return {**volume, "name": "kube-api-access-abcde"}


API_ACCESS = admitted_api_access_volume()


@dataclass
class Issuer:
    """Issues numbered tokens and records what it was asked for."""

    asked: list[TokenRequest] = field(default_factory=list)
    refuse: bool = False

    def __call__(self, request: TokenRequest) -> str:
        if self.refuse:
            raise not_found("serviceaccounts", "default")
        self.asked.append(request)
        return f"token-{len(self.asked)}"


def test_the_api_access_volume_with_an_issuer_holds_token_ca_and_namespace() -> None:
    issuer = Issuer()
    plan = plan_volume(API_ACCESS, lookup, FACTS, issuer)
    assert plan is not None and plan.kind == "projected" and plan.token_seconds == 3607
    assert [(f.path, f.data, f.mode) for f in plan.files] == [
        ("ca.crt", b"-----BEGIN CERTIFICATE-----\n", 0o644),
        ("namespace", b"shop", 0o644),
        ("token", b"token-1", 0o644),
    ]
    assert issuer.asked == [TokenRequest((), 3607)]
    audience = {"serviceAccountToken": {"path": "t", "audience": "vault"}}
    plan_volume({"name": "v", "projected": {"sources": [audience]}}, lookup, FACTS, issuer)
    assert issuer.asked[-1] == TokenRequest(("vault",), 3600)


def test_a_refused_token_is_a_failed_mount() -> None:
    with pytest.raises(MountVolumeError) as caught:
        plan_volume(API_ACCESS, lookup, FACTS, Issuer(refuse=True))
    assert str(caught.value) == (
        'MountVolume.SetUp failed for volume "kube-api-access-abcde" : failed to fetch token: '
        'serviceaccounts "default" not found'
    )


def test_a_refreshed_volume_swaps_its_files_atomically_in_place(tmp_path: Path) -> None:
    issuer = Issuer()
    first = plan_volume(API_ACCESS, lookup, FACTS, issuer)
    second = plan_volume(API_ACCESS, lookup, FACTS, issuer)
    assert first is not None and second is not None
    directory = tmp_path / "kubernetes.io~projected" / "kube-api-access-abcde"
    write_volume(directory, first, NOW)
    inode = directory.stat().st_ino
    later = NOW.replace(second=59)
    refresh_volume(directory, second, later)
    assert (directory / "token").read_text() == "token-2"
    assert directory.stat().st_ino == inode  # the directory a container binds stays
    assert sorted(p.name for p in directory.iterdir()) == [
        "..2026_12_06_10_11_59.345678000",
        "..data",
        "ca.crt",
        "namespace",
        "token",
    ]


def test_pod_volumes_keep_the_good_and_report_the_bad() -> None:
    planned = plan_pod_volumes(
        [{"name": "ok", "emptyDir": {}}, {"name": "bad", "configMap": {"name": "nope"}}],
        lookup,
        FACTS,
    )
    assert [p.name for p in planned.plans] == ["ok"]
    assert [e.volume for e in planned.errors] == ["bad"]


def test_api_data_volumes_are_read_only_empty_dirs_are_not() -> None:
    assert VolumePlan("a", "configmap").read_only and VolumePlan("b", "projected").read_only
    assert not VolumePlan("c", "empty-dir").read_only


def test_a_secret_file_never_shows_its_bytes() -> None:
    assert "s3cr3t" not in repr(VolumeFile("token", b"s3cr3t", 0o400))


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        pytest.param("a/b.py", "", id="nested"),
        pytest.param(
            "..data", "invalid path: must not start with '..': ..data", id="dotdot-prefix"
        ),
        pytest.param(
            "/etc/passwd", "invalid path: must be relative path: /etc/passwd", id="absolute"
        ),
        pytest.param("a/../../b", "invalid path: must not contain '..': a/../../b", id="backstep"),
        pytest.param("a//b", "invalid path: must be clean: a//b", id="unclean"),
        pytest.param("", "invalid path: must not be empty", id="empty"),
    ],
)
def test_payload_paths_are_validated_as_the_atomic_writer_does(path: str, problem: str) -> None:
    assert path_problem(path) == problem


def test_labels_are_formatted_as_fieldpath_format_map() -> None:
    assert format_map({"b": "2", "a": 'say "hi"'}) == 'a="say \\"hi\\""\nb="2"'


def test_mount_retries_back_off_as_the_volume_manager() -> None:
    assert [mount_retry_delay(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 32, 64, 122]


def test_layout_is_the_atomic_writers() -> None:
    plan = VolumePlan(
        "v",
        "configmap",
        (VolumeFile("harmonyflow/a.py", b"", 0o644), VolumeFile("x.py", b"", 0o644)),
    )
    laid = layout(plan, NOW)
    assert laid.data_dir == "..2026_12_06_10_11_12.345678000"
    assert laid.links == (
        ("..data", "..2026_12_06_10_11_12.345678000"),
        ("harmonyflow", "..data/harmonyflow"),
        ("x.py", "..data/x.py"),
    )


# ---- on disk ----


def test_a_configmap_volume_on_disk(tmp_path: Path) -> None:
    volume = {
        "name": "cfg",
        "configMap": {
            "name": "settings",
            "items": [
                {"key": "greeting", "path": "sub/greeting"},
                {"key": "mode", "path": "mode", "mode": 0o600},
            ],
        },
    }
    plan = plan_volume(volume, lookup, FACTS)
    assert plan is not None
    directory = tmp_path / "kubernetes.io~configmap" / "cfg"
    old_umask = os.umask(0o077)
    try:
        write_volume(directory, plan, NOW)
    finally:
        os.umask(old_umask)
    assert (directory / "sub" / "greeting").read_text() == "hello\n"
    assert os.readlink(directory / "sub") == "..data/sub"
    assert os.readlink(directory / "..data") == "..2026_12_06_10_11_12.345678000"
    assert stat.S_IMODE((directory / "mode").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "sub" / "greeting").stat().st_mode) == 0o644  # past the umask
    write_volume(directory, plan, NOW)  # a second set-up starts afresh
    assert sorted(p.name for p in directory.iterdir()) == [
        "..2026_12_06_10_11_12.345678000",
        "..data",
        "mode",
        "sub",
    ]


def test_an_empty_dir_keeps_its_content_across_set_ups(tmp_path: Path) -> None:
    plan = VolumePlan("scratch", "empty-dir")
    directory = tmp_path / "kubernetes.io~empty-dir" / "scratch"
    write_volume(directory, plan, NOW)
    (directory / "kept").write_text("x")
    write_volume(directory, plan, NOW)
    assert (directory / "kept").read_text() == "x"


def test_secret_volumes_are_readable_by_root_only_and_removed_with_the_pod(tmp_path: Path) -> None:
    plan = plan_volume({"name": "s", "secret": {"secretName": "creds"}}, lookup, FACTS)
    assert plan is not None
    written, errors = write_volumes(tmp_path, [plan], NOW)
    assert errors == []
    source = written["s"]
    assert source.read_only and source.path == tmp_path / "kubernetes.io~secret" / "s"
    assert (source.path / "token").read_bytes() == b"s3cr3t"
    assert stat.S_IMODE(source.path.parent.stat().st_mode) == 0o700
    (tmp_path / "app").mkdir()  # a container's log directory stays
    remove_volumes(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app"]


def test_a_volume_that_cannot_be_written_is_a_failed_mount(tmp_path: Path) -> None:
    (tmp_path / "kubernetes.io~configmap").write_text("in the way")
    plan = plan_volume({"name": "cfg", "configMap": {"name": "settings"}}, lookup, FACTS)
    assert plan is not None
    written, errors = write_volumes(tmp_path, [plan], NOW)
    assert written == {}
    assert [str(e).split(" : ")[0] for e in errors] == ['MountVolume.SetUp failed for volume "cfg"']


def test_the_worked_examples_hold() -> None:
    assert doctest.testmod(volumes_module).failed == 0


# ---- persistentVolumeClaim volumes ----

CLAIMS: dict[tuple[str, str], dict[str, Any]] = {
    ("persistentvolumeclaims", "bound"): {
        "spec": {"volumeName": "pvc-1"},
        "status": {"phase": "Bound"},
    },
    ("persistentvolumeclaims", "pending"): {"spec": {}, "status": {"phase": "Pending"}},
    ("persistentvolumeclaims", "orphan"): {
        "spec": {"volumeName": "pvc-gone"},
        "status": {"phase": "Bound"},
    },
    ("persistentvolumeclaims", "ebs"): {
        "spec": {"volumeName": "vol-ebs"},
        "status": {"phase": "Bound"},
    },
    ("persistentvolumes", "pvc-1"): {"spec": {"hostPath": {"path": "/state/volumes/pvc-1"}}},
    ("persistentvolumes", "vol-ebs"): {"spec": {"awsElasticBlockStore": {"volumeID": "vol-1"}}},
}


def claim_lookup(resource: str, name: str) -> dict[str, Any] | None:
    return CLAIMS.get((resource, name))


def claim(name: str, read_only: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"claimName": name}
    if read_only:
        source["readOnly"] = True
    return {"name": "reports", "persistentVolumeClaim": source}


@pytest.mark.parametrize(
    ("volume", "host_path", "read_only"),
    [
        pytest.param(claim("bound"), "/state/volumes/pvc-1", False, id="bound"),
        pytest.param(claim("bound", read_only=True), "/state/volumes/pvc-1", True, id="read-only"),
    ],
)
def test_a_bound_claims_volume_is_its_persistent_volumes_directory(
    volume: dict[str, Any], host_path: str, read_only: bool
) -> None:
    plan = plan_volume(volume, claim_lookup, FACTS)
    assert plan is not None
    assert (plan.kind, plan.host_path, plan.read_only, plan.files) == (
        "persistent-volume",
        host_path,
        read_only,
        (),
    )


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        pytest.param(
            claim("missing"),
            'MountVolume.SetUp failed for volume "reports" : failed to fetch PVC from API '
            'server: persistentvolumeclaims "missing" not found',
            id="missing-claim",
        ),
        pytest.param(
            claim("pending"),
            'MountVolume.SetUp failed for volume "reports" : PVC shop/pending has non-bound '
            'phase ("Pending") or empty pvc.Spec.VolumeName ("")',
            id="unbound-claim",
        ),
        pytest.param(
            claim("orphan"),
            'MountVolume.SetUp failed for volume "reports" : failed to fetch PV pvc-gone from '
            'API server: persistentvolumes "pvc-gone" not found',
            id="missing-volume",
        ),
        pytest.param(
            claim("ebs"),
            'MountVolume.SetUp failed for volume "reports" : the sandbox mounts only hostPath '
            "persistent volumes (as its provisioner makes them); vol-ebs has "
            "['awsElasticBlockStore']",
            id="not-a-directory-source",
        ),
    ],
)
def test_a_claim_that_cannot_be_mounted_is_a_failed_mount(
    volume: dict[str, Any], message: str
) -> None:
    with pytest.raises(MountVolumeError) as caught:
        plan_volume(volume, claim_lookup, FACTS)
    assert str(caught.value) == message


def test_a_claims_directory_is_bound_as_it_is_and_survives_the_pod(tmp_path: Path) -> None:
    data = tmp_path / "volumes" / "pvc-1"
    data.mkdir(parents=True)
    (data / "report.json").write_text("{}")
    pod_directory = tmp_path / "pods" / "shop_web-1_uid-1"
    plan = VolumePlan("reports", "persistent-volume", host_path=str(data))
    written, errors = write_volumes(pod_directory, [plan], NOW)
    assert errors == []
    assert written["reports"].path == data and written["reports"].read_only is False
    remove_volumes(pod_directory)
    assert (data / "report.json").read_text() == "{}"


def test_a_claims_directory_that_is_gone_is_a_failed_mount(tmp_path: Path) -> None:
    plan = VolumePlan("reports", "persistent-volume", host_path=str(tmp_path / "gone"))
    written, errors = write_volumes(tmp_path / "pod", [plan], NOW)
    assert written == {}
    assert [str(e) for e in errors] == [
        f'MountVolume.SetUp failed for volume "reports" : hostPath type check failed: '
        f"{tmp_path / 'gone'} is not a directory"
    ]
