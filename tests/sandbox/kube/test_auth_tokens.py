"""ServiceAccount tokens: issued, validated, expired, and invalidated with their account or pod."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.kube.auth.tokens import TokenIssuer
from sandbox.kube.clock import ManualClock
from sandbox.kube.errors import ApiError
from sandbox.kube.store import Store

# one key for the module: generating RSA keys is the slow part
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Cluster:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store = Store(self.clock)
        self.store.create("namespaces", {"metadata": {"name": "ns"}})
        self.store.create("serviceaccounts", {"metadata": {"name": "sa", "namespace": "ns"}})
        self.issuer = TokenIssuer(self.store.find, self.clock, key=KEY)

    def pod(self, name: str = "web-0") -> dict[str, Any]:
        return self.store.create(
            "pods",
            {
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield Cluster()


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def test_an_issued_token_authenticates_as_its_service_account(cluster: Cluster) -> None:
    token, expiration = cluster.issuer.issue("ns", "sa")
    user = cluster.issuer.authenticate(token)
    assert user is not None
    assert user.name == "system:serviceaccount:ns:sa"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns")
    assert user.uid == cluster.store.get("serviceaccounts", "ns", "sa")["metadata"]["uid"]
    assert (expiration - cluster.clock.now()).total_seconds() == 3600


def test_the_claims_are_upstreams(cluster: Cluster) -> None:
    pod = cluster.pod()
    token, _ = cluster.issuer.issue("ns", "sa", ("vault",), 600, bound_pod="web-0")
    got = claims(token)
    assert got["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert got["aud"] == ["vault"]
    assert got["sub"] == "system:serviceaccount:ns:sa"
    assert got["exp"] - got["iat"] == 600 and got["nbf"] == got["iat"]
    assert got["kubernetes.io"]["namespace"] == "ns"
    assert got["kubernetes.io"]["pod"] == {"name": "web-0", "uid": pod["metadata"]["uid"]}
    assert got["kubernetes.io"]["serviceaccount"]["name"] == "sa"
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "RS256", "kid": cluster.issuer.jwks()["keys"][0]["kid"]}


def test_a_token_for_another_audience_does_not_authenticate_to_the_api(cluster: Cluster) -> None:
    token, _ = cluster.issuer.issue("ns", "sa", ("vault",))
    assert cluster.issuer.authenticate(token) is None
    verdict = cluster.issuer.review(token, ("vault",))
    assert verdict.user is not None and verdict.audiences == ("vault",)


@pytest.mark.parametrize(
    ("seconds_later", "valid"),
    [
        pytest.param(3600, True, id="at-expiry"),
        pytest.param(3659, True, id="within-a-minute-of-leeway"),
        pytest.param(3661, False, id="expired"),
    ],
)
def test_tokens_expire_with_go_joses_leeway(
    cluster: Cluster, seconds_later: int, valid: bool
) -> None:
    token, _ = cluster.issuer.issue("ns", "sa")
    cluster.clock.advance(seconds_later)
    assert (cluster.issuer.authenticate(token) is not None) is valid


def test_deleting_the_service_account_invalidates_its_tokens(cluster: Cluster) -> None:
    token, _ = cluster.issuer.issue("ns", "sa")
    cluster.store.delete("serviceaccounts", "ns", "sa")
    assert cluster.issuer.review(token).error == "service account token has been invalidated"
    cluster.store.create("serviceaccounts", {"metadata": {"name": "sa", "namespace": "ns"}})
    assert cluster.issuer.authenticate(token) is None  # same name, another uid


def test_a_pod_bound_token_dies_with_its_pod(cluster: Cluster) -> None:
    cluster.pod()
    token, _ = cluster.issuer.issue("ns", "sa", bound_pod="web-0")
    user = cluster.issuer.authenticate(token)
    assert user is not None and user.extra["authentication.kubernetes.io/pod-name"] == ("web-0",)
    cluster.store.delete("pods", "ns", "web-0", grace_period_seconds=0)
    assert cluster.issuer.authenticate(token) is None


def test_tampered_or_foreign_tokens_are_refused(cluster: Cluster) -> None:
    token, _ = cluster.issuer.issue("ns", "sa")
    head, _, signature = token.split(".")
    forged = dict(claims(token), sub="system:serviceaccount:kube-system:admin")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert cluster.issuer.authenticate(f"{head}.{forged_payload}.{signature}") is None
    other = TokenIssuer(
        cluster.store.find, cluster.clock, key=rsa.generate_private_key(65537, 2048)
    )
    assert cluster.issuer.authenticate(other.issue("ns", "sa").token) is None
    assert cluster.issuer.authenticate("not-a-jwt") is None


def test_issuing_for_a_missing_account_or_pod_is_a_404(cluster: Cluster) -> None:
    with pytest.raises(ApiError) as account:
        cluster.issuer.issue("ns", "nobody")
    assert (account.value.code, account.value.message) == (
        404,
        'serviceaccounts "nobody" not found',
    )
    with pytest.raises(ApiError) as pod:
        cluster.issuer.issue("ns", "sa", bound_pod="gone")
    assert pod.value.code == 404
