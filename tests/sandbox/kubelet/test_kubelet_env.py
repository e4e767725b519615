"""Container environment: env, valueFrom (Secret, ConfigMap, downward API) and envFrom."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sandbox.kube.kubelet.env import (
    EnvConfigError,
    PodFacts,
    expand,
    master_service_env,
    resolve_env,
    service_link_env,
)

FACTS = PodFacts(
    "web-1",
    "shop",
    "uid-1",
    "node-a",
    "127.0.2.9",
    "127.0.1.10",
    labels={"app": "web"},
    annotations={"team": "core"},
)
OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("secrets", "creds"): {
        "metadata": {"namespace": "shop"},
        "data": {
            "SECRET_KEY": base64.b64encode(b"s3cr3t").decode(),
            "bad-name!": base64.b64encode(b"x").decode(),
        },
    },
    ("configmaps", "settings"): {
        "metadata": {"namespace": "shop"},
        "data": {"LOG_LEVEL": "debug", "MODE": "fast"},
    },
}


def lookup(resource: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((resource, name))


def secret_key(name: str, key: str, optional: bool = False) -> dict[str, Any]:
    return {"valueFrom": {"secretKeyRef": {"name": name, "key": key, "optional": optional}}}


def field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param({"env": [{"name": "A", "value": "1"}]}, {"A": "1"}, id="plain-value"),
        pytest.param(
            {"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-y"}]},
            {"A": "x", "B": "x-y"},
            id="expansion-of-earlier-var",
        ),
        pytest.param(
            {"env": [{"name": "B", "value": "$(LATER)"}, {"name": "LATER", "value": "1"}]},
            {"B": "$(LATER)", "LATER": "1"},
            id="later-var-not-expanded",
        ),
        pytest.param({"env": [{"name": "A", "value": "$$(A)"}]}, {"A": "$(A)"}, id="escaped"),
        pytest.param(
            {"env": [{"name": "S", **secret_key("creds", "SECRET_KEY")}]},
            {"S": "s3cr3t"},
            id="secret-key-ref",
        ),
        pytest.param(
            {
                "env": [
                    {
                        "name": "L",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LOG_LEVEL"}},
                    }
                ]
            },
            {"L": "debug"},
            id="configmap-key-ref",
        ),
        pytest.param(
            {"env": [{"name": "S", **secret_key("absent", "K", optional=True)}]},
            {},
            id="optional-missing-secret-skipped",
        ),
        pytest.param(
            {
                "env": [
                    {"name": "IP", **field("status.podIP")},
                    {"name": "N", **field("metadata.name")},
                    {"name": "NS", **field("metadata.namespace")},
                    {"name": "NODE", **field("spec.nodeName")},
                    {"name": "HOST", **field("status.hostIP")},
                    {"name": "APP", **field("metadata.labels['app']")},
                ]
            },
            {
                "IP": "127.0.2.9",
                "N": "web-1",
                "NS": "shop",
                "NODE": "node-a",
                "HOST": "127.0.1.10",
                "APP": "web",
            },
            id="downward-api",
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "creds"}}]},
            {"SECRET_KEY": "s3cr3t"},
            id="envfrom-secret-skips-invalid-names",
        ),
        pytest.param(
            {"envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}]},
            {"APP_LOG_LEVEL": "debug", "APP_MODE": "fast"},
            id="envfrom-prefix",
        ),
        pytest.param(
            {
                "envFrom": [{"configMapRef": {"name": "settings"}}],
                "env": [{"name": "MODE", "value": "slow"}],
            },
            {"LOG_LEVEL": "debug", "MODE": "slow"},
            id="env-wins-over-envfrom",
        ),
        pytest.param(
            {"envFrom": [{"secretRef": {"name": "absent", "optional": True}}]},
            {},
            id="optional-envfrom",
        ),
    ],
)
def test_resolve_env(container: dict[str, Any], expected: dict[str, str]) -> None:
    assert resolve_env(container, FACTS, lookup) == expected


@pytest.mark.parametrize(
    ("container", "message"),
    [
        pytest.param(
            {"env": [{"name": "S", **secret_key("absent", "K")}]},
            'secret "absent" not found',
            id="missing-secret",
        ),
        pytest.param(
            {"env": [{"name": "S", **secret_key("creds", "NOPE")}]},
            "couldn't find key NOPE in Secret shop/creds",
            id="missing-key",
        ),
        pytest.param(
            {"envFrom": [{"configMapRef": {"name": "absent"}}]},
            'configmap "absent" not found',
            id="missing-configmap",
        ),
    ],
)
def test_config_errors(container: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvConfigError, match=message):
        resolve_env(container, FACTS, lookup)


def test_expand_leaves_unknown_references() -> None:
    assert expand("$(A)/$(B)", {"A": "a"}) == "a/$(B)"


# ---- service variables ----

KUBERNETES = {
    "metadata": {"name": "kubernetes", "namespace": "default"},
    "spec": {
        "clusterIP": "127.0.4.2",
        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 36443}],
    },
}


def test_the_kubernetes_service_variables_are_the_kubelets() -> None:
    assert master_service_env(KUBERNETES) == {
        "KUBERNETES_SERVICE_HOST": "127.0.4.2",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://127.0.4.2:443",
        "KUBERNETES_PORT_443_TCP": "tcp://127.0.4.2:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "127.0.4.2",
    }
    assert master_service_env(None) == {}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param(
            {
                "metadata": {"name": "session-state"},
                "spec": {
                    "clusterIP": "127.0.4.9",
                    "ports": [{"port": 80}, {"name": "ws-alt", "port": 81, "protocol": "UDP"}],
                },
            },
            {
                "SESSION_STATE_SERVICE_HOST": "127.0.4.9",
                "SESSION_STATE_SERVICE_PORT": "80",
                "SESSION_STATE_SERVICE_PORT_WS_ALT": "81",
                "SESSION_STATE_PORT": "tcp://127.0.4.9:80",
                "SESSION_STATE_PORT_80_TCP": "tcp://127.0.4.9:80",
                "SESSION_STATE_PORT_80_TCP_PROTO": "tcp",
                "SESSION_STATE_PORT_80_TCP_PORT": "80",
                "SESSION_STATE_PORT_80_TCP_ADDR": "127.0.4.9",
                "SESSION_STATE_PORT_81_UDP": "udp://127.0.4.9:81",
                "SESSION_STATE_PORT_81_UDP_PROTO": "udp",
                "SESSION_STATE_PORT_81_UDP_PORT": "81",
                "SESSION_STATE_PORT_81_UDP_ADDR": "127.0.4.9",
            },
            id="dashes-upper-cased-first-port-unnamed-docker-links-per-port",
        ),
        pytest.param(
            {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}},
            {},
            id="headless-none",
        ),
    ],
)
def test_service_link_variables(service: dict[str, Any], expected: dict[str, str]) -> None:
    assert service_link_env(service) == expected


def test_the_containers_own_variables_win_and_may_use_the_service_ones() -> None:
    container = {
        "env": [
            {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
            {
                "name": "API",
                "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)",
            },
        ]
    }
    env = resolve_env(container, FACTS, lambda resource, name: None, master_service_env(KUBERNETES))
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["API"] == "https://127.0.4.2:6443"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.4.2"
    assert list(env)[:2] == ["KUBERNETES_SERVICE_PORT", "API"]  # the container's first
