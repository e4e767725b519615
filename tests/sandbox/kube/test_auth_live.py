"""Authentication and RBAC against the real kubectl: can-i, --as, whoami, 401 and 403."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.sandbox.harness import ApiHarness

NS = "harmonyflow"
SA = f"system:serviceaccount:{NS}:reader"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    harness = ApiHarness(tmp_path_factory.mktemp("auth"))
    core = client.CoreV1Api(harness.api_client())
    core.create_namespaced_service_account(NS, {"metadata": {"name": "reader"}})
    rbac = client.RbacAuthorizationV1Api(harness.api_client())
    rbac.create_namespaced_role(
        NS,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NS}],
        },
    )
    yield harness
    harness.close()


def request(
    api: ApiHarness, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, Any]]:
    connection = api.connection()
    data = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_the_admin_can_do_anything(api: ApiHarness) -> None:
    assert api.kubectl("auth", "can-i", "delete", "pods", "-n", NS).stdout.strip() == "yes"


def test_can_i_as_a_service_account_follows_its_role(api: ApiHarness) -> None:
    allowed = api.kubectl("auth", "can-i", "list", "pods", "-n", NS, f"--as={SA}")
    assert allowed.stdout.strip() == "yes"
    denied = api.kubectl("auth", "can-i", "delete", "pods", "-n", NS, f"--as={SA}", check=False)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    elsewhere = api.kubectl(
        "auth", "can-i", "list", "pods", "-n", "default", f"--as={SA}", check=False
    )
    assert elsewhere.stdout.strip() == "no"


def test_can_i_list_prints_the_roles_rules(api: ApiHarness) -> None:
    out = api.kubectl("auth", "can-i", "--list", "-n", NS, f"--as={SA}").stdout
    rows = {line.split()[0]: line.rstrip() for line in out.splitlines()[1:] if line.strip()}
    assert rows["pods"].endswith("[get list]")
    assert rows["selfsubjectaccessreviews.authorization.k8s.io"].endswith("[create]")


def test_a_denied_request_prints_upstreams_forbidden_message(api: ApiHarness) -> None:
    denied = api.kubectl("delete", "pod", "x", "-n", NS, f"--as={SA}", check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): pods "x" is forbidden: User '
        f'"{SA}" cannot delete resource "pods" in API group "" in the namespace "{NS}"'
    )


def test_impersonation_needs_the_impersonate_verb(api: ApiHarness) -> None:
    token = api.kubectl("create", "token", "reader", "-n", NS).stdout.strip()
    status, body = request(
        api,
        "GET",
        f"/api/v1/namespaces/{NS}/pods",
        {**api.auth_headers(token), "Impersonate-User": "jane"},
    )
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        f'users "jane" is forbidden: User "{SA}" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    )


def test_a_request_without_credentials_is_401_but_health_is_public(api: ApiHarness) -> None:
    status, body = request(api, "GET", "/api/v1/namespaces", {})
    assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
    status, _ = request(api, "GET", "/api/v1/namespaces", api.auth_headers("no-such-token"))
    assert status == 401
    connection = api.connection()
    connection.request("GET", "/livez")
    assert connection.getresponse().status == 200
    connection.close()
    status, body = request(api, "GET", "/metrics/", {})  # trailing slash: not a public path
    assert status == 401


def test_a_created_token_reads_what_its_role_allows(api: ApiHarness) -> None:
    token = api.kubectl("create", "token", "reader", "-n", NS).stdout.strip()
    status, listed = request(api, "GET", f"/api/v1/namespaces/{NS}/pods", api.auth_headers(token))
    assert (status, listed["kind"]) == (200, "PodList")
    status, denied = request(api, "GET", "/api/v1/nodes", api.auth_headers(token))
    assert (status, denied["message"]) == (
        403,
        f'nodes is forbidden: User "{SA}" cannot list resource "nodes" in API group "" at the '
        "cluster scope",
    )
    status, review = request(
        api,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        api.auth_headers(),
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
    )
    assert (status, review["status"]["authenticated"]) == (201, True)
    assert review["status"]["user"]["username"] == SA
    assert "system:authenticated" in review["status"]["user"]["groups"]


def test_whoami(api: ApiHarness) -> None:
    out = api.kubectl("auth", "whoami").stdout
    lines = [line.split(None, 1) for line in out.splitlines()]
    assert ["Username", "kubernetes-admin"] in lines
    assert ["Groups", "[system:masters system:authenticated]"] in lines
    as_sa = api.kubectl("auth", "whoami", f"--as={SA}").stdout
    assert SA in as_sa and "system:serviceaccounts:harmonyflow" in as_sa


def test_service_account_issuer_discovery_is_for_authenticated_service_accounts(
    api: ApiHarness,
) -> None:
    token = api.kubectl("create", "token", "reader", "-n", NS).stdout.strip()
    status, config = request(
        api, "GET", "/.well-known/openid-configuration", api.auth_headers(token)
    )
    assert (status, config["issuer"]) == (200, "https://kubernetes.default.svc.cluster.local")
    status, keys = request(api, "GET", "/openid/v1/jwks", api.auth_headers(token))
    assert status == 200 and keys["keys"][0]["alg"] == "RS256"
    assert request(api, "GET", "/openid/v1/jwks", {})[0] == 401


def test_the_kubeconfig_is_private(api: ApiHarness) -> None:
    assert Path(api.kubeconfig).stat().st_mode & 0o077 == 0
