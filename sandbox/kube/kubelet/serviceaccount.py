"""Service-account tokens for projected volumes: what the kubelet asks for, and when again.

The kubelet's `serviceAccountToken` projection (pkg/volume/projected/projected.go
`collectData`) asks the API server for a bound token (`TokenRequest` on
`serviceaccounts/<name>/token`, bound to the pod) with the source's `audience` (none:
the API server's own audiences) and `expirationSeconds` (default 3600; validation keeps
it at 600 or more), and writes it to the source's `path`. Its token manager
(pkg/kubelet/token/token_manager.go `requiresRefresh`) gets a new one once 80 % of
the token's lifetime has passed, or 24 hours, whichever comes first; the volume is
then set up again and the file replaced atomically (`volumefs.refresh_volume`).
Upstream subtracts up to 10 s of jitter; the sandbox refreshes at the mark.

Who issues the token is a `TokenIssuer`, given to the kubelets by the control plane
(the API server's token signer). Without one, the kubelet materializes no volume
that has a `serviceAccountToken` source, as before there was an issuer: such a
pod's `kube-api-access-*` volume is not mounted.

    >>> request = token_request({"path": "token"})
    >>> request, refresh_after(request.expiration_seconds)
    (TokenRequest(audiences=(), expiration_seconds=3600), 2880.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_EXPIRATION_SECONDS = 3600  # api/core/v1 ServiceAccountTokenProjection default
MAX_TTL_SECONDS = 24 * 3600  # token_manager.go maxTTL
REFRESH_FRACTION = 0.8  # "within 20% of the TTL ... from the expiration time"


class TokenIssuer(Protocol):
    """Issues a service-account token bound to a pod (the TokenRequest API).

    Refuses (a missing ServiceAccount, say) by raising `ApiError`, as the API answers.
    """

    def issue(
        self,
        namespace: str,
        service_account_name: str,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound_pod_name: str,
        bound_pod_uid: str,
    ) -> str: ...


@dataclass(frozen=True)
class TokenRequest:
    audiences: tuple[str, ...]
    expiration_seconds: int


# A pod's view of its issuer: the request in, the token out (the pod's identity bound in).
TokenSource = Callable[[TokenRequest], str]


def token_request(projection: Mapping[str, Any]) -> TokenRequest:
    """A `serviceAccountToken` projection's request: its audience, if any, and lifetime."""
    audience = str(projection.get("audience") or "")
    seconds = int(projection.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS)
    return TokenRequest((audience,) if audience else (), seconds)


def refresh_after(expiration_seconds: int) -> float:
    """Seconds after issuing when the token manager gets a new token.

    >>> refresh_after(3600), refresh_after(10 * 24 * 3600)
    (2880.0, 86400.0)
    """
    return float(min(REFRESH_FRACTION * expiration_seconds, MAX_TTL_SECONDS))


def pod_token_source(
    issuer: TokenIssuer, namespace: str, service_account: str, pod: str, uid: str
) -> TokenSource:
    """The issuer, for one pod: what `volumes.plan_volume` calls for each token source."""

    def issue(request: TokenRequest) -> str:
        return issuer.issue(
            namespace, service_account, request.audiences, request.expiration_seconds, pod, uid
        )

    return issue
