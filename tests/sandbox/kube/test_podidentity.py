"""EKS's pod identity webhook as the sandbox applies it: upstream's own test cases
(amazon-eks-pod-identity-webhook pkg/handler/testdata) as a table, and the admission."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.kube import podidentity
from sandbox.kube.podidentity import (
    MOUNT_PATH,
    ROLE_ARN_ANNOTATION,
    TOKEN_FILE,
    PodIdentitySettings,
    with_pod_identity,
)
from sandbox.kube.store import Store

ROLE = "arn:aws:iam::111122223333:role/s3-reader"
SETTINGS = PodIdentitySettings("us-west-2", "http://127.0.0.1:4566")


def _account(**annotations: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {ROLE_ARN_ANNOTATION: ROLE, **annotations}}}


def _pod(env: list[dict[str, str]] | None = None, **annotations: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "amazonlinux"}
    if env is not None:
        container["env"] = env
    return {"metadata": {"annotations": annotations}, "spec": {"containers": [container]}}


def _env(pod: dict[str, Any], index: int = 0) -> list[tuple[str, str]]:
    container = pod["spec"]["containers"][index]
    return [(e["name"], e["value"]) for e in container.get("env", [])]


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(podidentity).failed == 0


def test_a_service_account_without_a_role_leaves_the_pod_alone() -> None:
    pod = _pod()
    assert with_pod_identity(pod, {"metadata": {}}, SETTINGS) is pod
    assert with_pod_identity(pod, None, SETTINGS) is pod


def test_needs_region_the_token_volume_env_and_mount_are_added() -> None:
    mutated = with_pod_identity(_pod(), _account(), SETTINGS)
    assert mutated["spec"]["volumes"] == [
        {
            "name": "aws-iam-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "sts.amazonaws.com",
                            "expirationSeconds": 86400,
                            "path": "token",
                        }
                    }
                ]
            },
        }
    ]
    assert _env(mutated) == [
        ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("AWS_REGION", "us-west-2"),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_FILE),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
    ]
    assert mutated["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "aws-iam-token", "readOnly": True, "mountPath": MOUNT_PATH}
    ]


def test_min_token_expiration_and_present_keys_rawPodMinTokenExpiration() -> None:
    present = [
        {"name": "AWS_REGION", "value": "cn-northwest-1"},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
    ]
    pod = _pod(present, **{"eks.amazonaws.com/token-expiration": "0"})
    mutated = with_pod_identity(pod, _account(), PodIdentitySettings("cn-north-1"))
    token = mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == 600
    assert _env(mutated) == [
        ("AWS_REGION", "cn-northwest-1"),
        ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_FILE),
    ]
    assert pod["spec"]["containers"][0]["env"] == present  # the input is not changed


@pytest.mark.parametrize(
    ("account", "audience", "expiration", "regional"),
    [
        (_account(), "sts.amazonaws.com", 86400, True),
        (_account(**{"eks.amazonaws.com/audience": "custom"}), "custom", 86400, True),
        (
            _account(**{"eks.amazonaws.com/token-expiration": "7200"}),
            "sts.amazonaws.com",
            7200,
            True,
        ),
        (_account(**{"eks.amazonaws.com/token-expiration": "x"}), "sts.amazonaws.com", 86400, True),
        (
            _account(**{"eks.amazonaws.com/sts-regional-endpoints": "false"}),
            "sts.amazonaws.com",
            86400,
            False,
        ),
    ],
)
def test_service_account_annotations_override_the_flags(
    account: dict[str, Any], audience: str, expiration: int, regional: bool
) -> None:
    mutated = with_pod_identity(_pod(), account, SETTINGS)
    token = mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert (token["audience"], token["expirationSeconds"]) == (audience, expiration)
    assert (("AWS_STS_REGIONAL_ENDPOINTS", "regional") in _env(mutated)) is regional


def test_skipped_containers_and_an_existing_volume_are_kept_as_they_are() -> None:
    pod = _pod(**{"eks.amazonaws.com/skip-containers": "sidecar"})
    pod["spec"]["containers"].append({"name": "sidecar"})
    pod["spec"]["initContainers"] = [{"name": "init"}]
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    mutated = with_pod_identity(pod, _account(), SETTINGS)
    assert [v["name"] for v in mutated["spec"]["volumes"]] == ["aws-iam-token", "data"]
    assert "env" not in mutated["spec"]["containers"][1]
    assert ("AWS_ROLE_ARN", ROLE) in [
        (e["name"], e["value"]) for e in mutated["spec"]["initContainers"][0]["env"]
    ]
    again = with_pod_identity(mutated, _account(), SETTINGS)
    assert again["spec"] == mutated["spec"]  # the webhook is idempotent


def test_the_store_admits_pods_with_the_webhook_only_where_aws_is_served() -> None:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "ns"}})
    store.create(
        "serviceaccounts",
        {"metadata": {"name": "runner", "namespace": "ns", **_account()["metadata"]}},
    )
    spec: dict[str, Any] = {
        "serviceAccountName": "runner",
        "containers": [{"name": "c", "image": "busybox"}],
    }
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}
    plain = store.create("pods", {**pod, "metadata": {"name": "plain", "namespace": "ns"}})
    assert not any(v["name"] == "aws-iam-token" for v in plain["spec"]["volumes"])
    store.pod_identity = SETTINGS
    mutated = store.create("pods", pod)
    assert mutated["spec"]["volumes"][0]["name"] == "aws-iam-token"
    mounts = [m["mountPath"] for m in mutated["spec"]["containers"][0]["volumeMounts"]]
    assert mounts == ["/var/run/secrets/kubernetes.io/serviceaccount", MOUNT_PATH]
