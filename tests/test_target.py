"""Target loading (kubeconfig, contexts, reachability) and the safety interlocks."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience.errors import InvalidInputError
from resilience.safety.refusals import (
    InterlockRefused,
    SafetySettings,
    blast_radius_refusal,
    broker_quorum_refusal,
    disruption_budget,
    enforce,
    namespace_refusal,
    production_refusal,
)
from resilience.targets.cluster import TargetUnreachableError, check_reachable, load_target
from tests.observe.builders import base_policy

TOKEN = "s3cr3t-t0ken-do-not-log"


def write_kubeconfig(path: Path, contexts: dict[str, str], current: str | None = None) -> Path:
    """One cluster per context, named after it, with a bearer token that must never leak."""
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in contexts.items()],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": "u", "namespace": "harmonyflow"}}
            for n in contexts
        ],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed when the with-block ends


def test_load_target_reads_context_server_and_aws_from_env(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", {"sandbox": "http://127.0.0.1:1", "staging": "https://s"}, "sandbox"
    )
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:2", "AWS_REGION": "us-west-2"}
    target = load_target(path, env=env)
    assert (target.context, target.server, target.namespace) == (
        "sandbox",
        "http://127.0.0.1:1",
        "harmonyflow",
    )
    assert target.aws.endpoint_url == "http://127.0.0.1:2" and target.aws.region == "us-west-2"
    assert load_target(path, context="staging", env={}).server == "https://s"
    assert TOKEN not in repr(target) and TOKEN not in str(target)


def test_kubeconfig_from_the_environment(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "k", {"sandbox": "http://127.0.0.1:1"}, "sandbox")
    assert load_target(env={"KUBECONFIG": str(path)}).kubeconfig == path


@pytest.mark.parametrize(
    ("contexts", "current", "context", "message"),
    [
        pytest.param(None, None, None, "no such file", id="missing-file"),
        pytest.param(
            {"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:2"},
            "a",
            "c",
            "unknown context 'c'; known contexts: a, b",
            id="unknown-context",
        ),
        pytest.param(
            {"a": "http://127.0.0.1:1"}, None, None, "no current-context", id="no-context"
        ),
    ],
)
def test_load_target_errors_say_what_to_fix(
    tmp_path: Path,
    contexts: dict[str, str] | None,
    current: str | None,
    context: str | None,
    message: str,
) -> None:
    path = tmp_path / "config"
    if contexts is not None:
        write_kubeconfig(path, contexts, current)
    with pytest.raises(InvalidInputError, match=message):
        load_target(path, context=context, env={})


def test_unreachable_api_server_fails_fast_with_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    target = load_target(write_kubeconfig(tmp_path / "config", {"dead": url}, "dead"), env={})
    started = time.monotonic()
    with pytest.raises(TargetUnreachableError, match=f"cannot reach the Kubernetes API at {url}"):
        check_reachable(target, timeout=2.0)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("context", "server", "allow", "typed", "refused", "hint"),
    [
        pytest.param("sandbox", "http://127.0.0.1:6443", False, None, False, "", id="sandbox"),
        pytest.param("staging", "https://staging.k8s", False, None, False, "", id="staging"),
        pytest.param("eks-prod-usw2", "https://x", False, None, True, "eks-prod-usw2", id="name"),
        pytest.param("ops", "https://production.k8s", False, None, True, "ops", id="server"),
        pytest.param("prd", "https://x", True, "prd ", True, "exactly: prd", id="bad-typing"),
        pytest.param("eks-prod", "https://x", True, None, True, "eks-prod", id="no-typing"),
        pytest.param("eks-prod", "https://x", False, "eks-prod", True, "allow", id="not-allowed"),
        pytest.param("eks-prod", "https://x", True, "eks-prod", False, "", id="confirmed"),
        pytest.param("product-dev", "https://x", False, None, False, "", id="product-not-prod"),
    ],
)
def test_production_interlock(
    context: str, server: str, allow: bool, typed: str | None, refused: bool, hint: str
) -> None:
    refusal = production_refusal(context, server, allow_production=allow, confirmation=typed)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.rule == "production" and hint in refusal.message


def test_production_patterns_are_configurable() -> None:
    assert production_refusal("live-eu", "https://x", patterns=("live",)) is not None
    assert production_refusal("eks-prod", "https://x", patterns=("live",)) is None


@pytest.mark.parametrize(
    ("namespace", "allowlist", "refused"),
    [
        pytest.param("harmonyflow", None, False, id="default"),
        pytest.param("harmonyflow-staging", None, False, id="staging"),
        pytest.param("kube-system", None, True, id="kube-system"),
        pytest.param("t-1234", ("t-1234",), False, id="configured"),
    ],
)
def test_namespace_allowlist(
    namespace: str, allowlist: tuple[str, ...] | None, refused: bool
) -> None:
    refusal = (
        namespace_refusal(namespace)
        if allowlist is None
        else namespace_refusal(namespace, allowlist)
    )
    assert (refusal is not None) is refused
    if refusal is not None:
        assert f"namespace {namespace!r} is not on the allowlist" in refusal.message


@pytest.mark.parametrize(
    ("planned", "refused"),
    [
        pytest.param(0, False, id="none"),
        pytest.param(1, False, id="within"),
        pytest.param(2, True, id="over"),
    ],
)
def test_blast_radius_against_the_intended_budget(planned: int, refused: bool) -> None:
    budget = disruption_budget(base_policy())
    refusal = blast_radius_refusal(planned, budget, "terminate_pods")
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.message == (
            f"terminate_pods would disrupt {planned} pods at once, more than the budget of {budget}"
        )


@pytest.mark.parametrize(
    ("running", "stopping", "keep_running", "left"),
    [
        pytest.param(["r1", "r2", "r3"], ["r1"], 2, None, id="one-of-three"),
        pytest.param(["r1", "r2"], ["r1"], 2, 1, id="already-short"),
        pytest.param(["r1", "r2", "r3"], ["r1", "r2", "r3"], 0, None, id="outage-declared"),
        pytest.param(["r1", "r2", "r3"], ["r1", "r2"], 2, 1, id="two-of-three"),
    ],
)
def test_a_broker_stop_keeps_the_declared_quorum(
    running: list[str], stopping: list[str], keep_running: int, left: int | None
) -> None:
    refusal = broker_quorum_refusal(running, stopping, keep_running)
    if left is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal.rule == "blast-radius"
        assert f"would leave {left} of the {len(running)} running brokers" in refusal.message
        assert f"fewer than keep_running {keep_running}" in refusal.message


def test_negative_numbers_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        blast_radius_refusal(-1, 1)


def test_target_check_safety_collects_every_refusal(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"eks-prod": "https://x"}, "eks-prod")
    target = load_target(path, namespace="default", env={})
    with pytest.raises(InterlockRefused) as refused:
        target.check_safety()
    assert [r.rule for r in refused.value.refusals] == ["production", "namespace"]
    confirmed = SafetySettings(
        allow_production=True, confirmation="eks-prod", namespace_allowlist=("default",)
    )
    target.check_safety(confirmed)
    enforce([None])
