"""ServiceAccount tokens as the API server issues and checks them: RS256 JWTs.

Upstream: pkg/serviceaccount/jwt.go (signing, `keyIDFromPublicKey`), claims.go
(`Claims` with the `kubernetes.io` private claim, `validator.Validate`) and
pkg/registry/core/serviceaccount/storage/token.go (TokenRequest). One key per
sandbox run, generated at start; the issuer is EKS's and kubeadm's default.

Callers: the API server (bearer tokens, TokenRequest, TokenReview, the OIDC
discovery documents) and the kubelet (projected `serviceAccountToken` volumes)
call `TokenIssuer` directly:

    >>> issuer = TokenIssuer(store.find, clock)            # doctest: +SKIP
    >>> token, expiration = issuer.issue("ns", "sa", (), 3600, bound_pod="web-0")  # doctest: +SKIP
    >>> issuer.authenticate(token).name                     # doctest: +SKIP
    'system:serviceaccount:ns:sa'

A token stops authenticating when it expires (60 s of leeway, go-jose's
`DefaultLeeway`), when its ServiceAccount or bound pod is gone, or when either
was recreated under the same name (another uid).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.kube.auth.user import (
    CREDENTIAL_ID_KEY,
    NODE_NAME_KEY,
    NODE_UID_KEY,
    POD_NAME_KEY,
    POD_UID_KEY,
    UserInfo,
    service_account_groups,
    service_account_username,
)
from sandbox.kube.clock import Clock
from sandbox.kube.errors import conflict, not_found

KubeObject = dict[str, Any]
# Store.find(resource, namespace, name): the objects a token names, read when it is used.
ObjectLookup = Callable[[str, str, str], KubeObject | None]
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION_SECONDS = 3600  # TokenRequestSpec.ExpirationSeconds default
MIN_EXPIRATION_SECONDS = 600  # validation: "may not specify a duration less than 10 minutes"
MAX_EXPIRATION_SECONDS = 1 << 32
LEEWAY_SECONDS = 60
KEY_BITS = 2048


class IssuedToken(NamedTuple):
    token: str
    expiration: datetime


@dataclass(frozen=True)
class Verdict:
    """What checking a token found: the user, the audiences it was accepted for, or why not."""

    user: UserInfo | None
    audiences: tuple[str, ...] = ()
    error: str = ""


class TokenIssuer:
    """Signs and validates ServiceAccount JWTs with one RSA key."""

    def __init__(
        self,
        lookup: ObjectLookup,
        clock: Clock,
        key: rsa.RSAPrivateKey | None = None,
        issuer: str = DEFAULT_ISSUER,
        api_audiences: Sequence[str] = (),
    ) -> None:
        self.lookup = lookup
        self.clock = clock
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        self.issuer = issuer
        # --api-audiences defaults to the issuer (kube-apiserver options/authentication.go)
        self.api_audiences = tuple(api_audiences) or (issuer,)
        self.key_id = key_id(self.key.public_key())

    # ---- issue ----

    def issue(
        self,
        namespace: str,
        service_account: str,
        audiences: Sequence[str] = (),
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        bound_pod: str | None = None,
    ) -> IssuedToken:
        """A token for an existing ServiceAccount (404 otherwise), bound to a pod if named.

        A pod-bound token names the pod's node too (ServiceAccountTokenPodNodeInfo,
        on by default since 1.30)."""
        account = self.lookup("serviceaccounts", namespace, service_account)
        if account is None:
            raise not_found("serviceaccounts", service_account)
        claims = self.claims(
            namespace, account, audiences, expiration_seconds, self._pod(namespace, bound_pod)
        )
        return IssuedToken(self.sign(claims), datetime.fromtimestamp(claims["exp"], tz=UTC))

    def _pod(self, namespace: str, name: str | None) -> KubeObject | None:
        if name is None:
            return None
        pod = self.lookup("pods", namespace, name)
        if pod is None:
            raise not_found("pods", name)
        return pod

    def claims(
        self,
        namespace: str,
        account: Mapping[str, Any],
        audiences: Sequence[str],
        expiration_seconds: int,
        pod: Mapping[str, Any] | None,
    ) -> KubeObject:
        """claims.go Claims(): public claims plus `kubernetes.io` (namespace, serviceaccount,
        pod and node when bound)."""
        now = int(self.clock.now().timestamp())
        private: KubeObject = {
            "namespace": namespace,
            "serviceaccount": _ref(account),
        }
        if pod is not None:
            private["pod"] = _ref(pod)
            node_name = (pod.get("spec") or {}).get("nodeName")
            node = self.lookup("nodes", "", node_name) if node_name else None
            if node is not None:
                private["node"] = _ref(node)
        return {
            "aud": list(audiences) or list(self.api_audiences),
            "exp": now + expiration_seconds,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": now,
            "sub": service_account_username(namespace, str(account["metadata"]["name"])),
        }

    def sign(self, claims: Mapping[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.key_id}
        signing_input = f"{_b64_json(header)}.{_b64_json(claims)}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    # ---- validate ----

    def authenticate(self, token: str) -> UserInfo | None:
        """The token's ServiceAccount user (without system:authenticated), or None."""
        return self.review(token).user

    def review(self, token: str, audiences: Sequence[str] = ()) -> Verdict:
        """Check a token for `audiences` (the API server's own when empty), as TokenReview."""
        claims = self.verified_claims(token)
        if claims is None:
            return Verdict(None, error="invalid bearer token")
        wanted = tuple(audiences) or self.api_audiences
        error = self._public_claims_error(claims, wanted)
        if error:
            return Verdict(None, error=error)
        accepted = tuple(a for a in wanted if a in _audiences(claims))
        return self._user(claims, accepted)

    def verified_claims(self, token: str) -> KubeObject | None:
        """The claims of a JWT this issuer signed (RS256 with its key id), else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            if header.get("alg") != "RS256" or header.get("kid", self.key_id) != self.key_id:
                return None
            self.key.public_key().verify(
                _unb64(parts[2]),
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, InvalidSignature, AttributeError):
            return None
        return claims if isinstance(claims, dict) else None

    def _public_claims_error(self, claims: Mapping[str, Any], wanted: Sequence[str]) -> str:
        if claims.get("iss") != self.issuer:
            return "token issuer is not trusted"
        if not any(a in wanted for a in _audiences(claims)):
            return "token audiences are invalid"
        now = self.clock.now().timestamp()
        numbers = {key: claims.get(key) for key in ("exp", "nbf", "iat")}
        if any(value is not None and not isinstance(value, int) for value in numbers.values()):
            return "token is malformed"
        exp, nbf, iat = numbers["exp"], numbers["nbf"], numbers["iat"]
        if exp is not None and now - LEEWAY_SECONDS > exp:
            return "service account token has expired"
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            return "service account token is not valid yet"
        if iat is not None and now + LEEWAY_SECONDS < iat:
            return "service account token issued in the future"
        return ""

    def _user(self, claims: Mapping[str, Any], accepted: tuple[str, ...]) -> Verdict:
        """validator.Validate: the ServiceAccount (and pod) must still exist with their uid."""
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return Verdict(None, error="service account token claims could not be read")
        namespace = str(private.get("namespace", ""))
        account_ref = private.get("serviceaccount") or {}
        account = self.lookup("serviceaccounts", namespace, str(account_ref.get("name", "")))
        if account is None:
            return Verdict(None, error="service account token has been invalidated")
        uid = account["metadata"].get("uid", "")
        if uid != account_ref.get("uid"):
            return Verdict(
                None,
                error=f"service account UID ({uid}) does not match claim "
                f"({account_ref.get('uid')})",
            )
        extra: dict[str, tuple[str, ...]] = {}
        if claims.get("jti"):
            extra[CREDENTIAL_ID_KEY] = (f"JTI={claims['jti']}",)
        pod_ref = private.get("pod")
        if pod_ref:
            pod = self.lookup("pods", namespace, str(pod_ref.get("name", "")))
            if pod is None:
                return Verdict(None, error="service account token has been invalidated")
            if pod["metadata"].get("uid") != pod_ref.get("uid"):
                return Verdict(
                    None,
                    error=f"pod UID ({pod['metadata'].get('uid')}) does not match claim "
                    f"({pod_ref.get('uid')})",
                )
            extra[POD_NAME_KEY] = (str(pod_ref["name"]),)
            extra[POD_UID_KEY] = (str(pod_ref["uid"]),)
        node_ref = private.get("node")
        if node_ref:
            extra[NODE_NAME_KEY] = (str(node_ref.get("name", "")),)
            extra[NODE_UID_KEY] = (str(node_ref.get("uid", "")),)
        user = UserInfo(
            service_account_username(namespace, str(account_ref["name"])),
            uid,
            service_account_groups(namespace),
            extra,
        )
        return Verdict(user, accepted)

    # ---- ServiceAccountIssuerDiscovery ----

    def jwks(self) -> KubeObject:
        """/openid/v1/jwks (pkg/serviceaccount/openidmetadata.go)."""
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.key_id,
                    "alg": "RS256",
                    "n": _b64(_int_bytes(numbers.n)),
                    "e": _b64(_int_bytes(numbers.e)),
                }
            ]
        }

    def openid_configuration(self, jwks_uri: str) -> KubeObject:
        """/.well-known/openid-configuration; jwks_uri is the API server's own address
        unless --service-account-jwks-uri says otherwise."""
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }


@dataclass(frozen=True)
class PodBoundTokens:
    """The issuer as the kubelet asks it (`kubelet/serviceaccount.TokenIssuer`): a token
    bound to the pod by name and uid, as the projection's TokenRequest's boundObjectRef
    asks (registry/core/serviceaccount/storage/token.go refuses a uid that is not the
    pod's with a Conflict)."""

    tokens: TokenIssuer

    def issue(
        self,
        namespace: str,
        service_account_name: str,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound_pod_name: str,
        bound_pod_uid: str,
    ) -> str:
        pod = self.tokens.lookup("pods", namespace, bound_pod_name)
        uid = (pod or {}).get("metadata", {}).get("uid")
        if pod is not None and uid != bound_pod_uid:
            raise conflict(
                "Pod",
                bound_pod_name,
                detail=f"the UID in the bound object reference ({bound_pod_uid}) does not match "
                "the UID in record. The object might have been deleted and then recreated",
            )
        issued = self.tokens.issue(
            namespace, service_account_name, audiences, expiration_seconds, bound_pod_name
        )
        return issued.token


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """keyIDFromPublicKey: base64url(SHA-256(PKIX DER)) without padding."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64(hashlib.sha256(der).digest())


def _ref(obj: Mapping[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    return {"name": str(metadata.get("name", "")), "uid": str(metadata.get("uid", ""))}


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    """`aud` is a string or a list of strings (RFC 7519 4.1.3)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_json(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")
