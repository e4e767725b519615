"""Who sent a request: bearer tokens, else anonymous on the few public paths, else 401.

Upstream: k8s.io/apiserver/pkg/authentication/request/bearertoken (the header),
.../request/websocket (the token in `Sec-WebSocket-Protocol`), .../request/anonymous
with 1.32's AnonymousAuthConfigurableEndpoints conditions (anonymous only for the
health and version endpoints, as an AuthenticationConfiguration with
`anonymous.conditions` sets it), `union.NewFailOnError` (a presented but invalid
token is a 401, never anonymous) and `group.AuthenticatedGroupAdder`.

>>> users = {"s3cret": UserInfo("kubernetes-admin", groups=("system:masters",))}.get
>>> authenticate(Credentials("Bearer s3cret", ""), "/api", users).groups
('system:masters', 'system:authenticated')
>>> authenticate(Credentials("", ""), "/livez", users).name
'system:anonymous'
>>> authenticate(Credentials("", ""), "/api", users) is None
True
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.kube.auth.user import ANONYMOUS_USER, UserInfo, with_authenticated_group

# AnonymousAuthConfig.Conditions the sandbox runs with: kubeadm's and EKS's hardening.
ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")
WEBSOCKET_TOKEN_PREFIX = "base64url.bearer.authorization.k8s.io."
TokenAuthenticator = Callable[[str], UserInfo | None]


@dataclass(frozen=True)
class Credentials:
    """What a request presents: its Authorization header, its WebSocket subprotocols."""

    authorization: str
    websocket_protocols: str = ""


def bearer_token(credentials: Credentials) -> str | None:
    """The token presented (None: none; "" never counts), as bearertoken.go reads it."""
    header = credentials.authorization.strip()
    parts = header.split(" ", 2)
    if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1]:
        return parts[1]
    for offered in credentials.websocket_protocols.split(","):
        protocol = offered.strip()
        if protocol.startswith(WEBSOCKET_TOKEN_PREFIX):
            encoded = protocol.removeprefix(WEBSOCKET_TOKEN_PREFIX)
            try:
                token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return ""
            return token
    return None


def authenticate(
    credentials: Credentials, path: str, token_user: TokenAuthenticator
) -> UserInfo | None:
    """The request's user, or None for a 401 (reason Unauthorized)."""
    token = bearer_token(credentials)
    if token is not None:
        user = token_user(token) if token else None
        return with_authenticated_group(user) if user is not None else None
    if path in ANONYMOUS_PATHS:
        return ANONYMOUS_USER
    return None
