"""STS AssumeRoleWithWebIdentity: the token check AWS makes before it hands out credentials.

IRSA on EKS: the pod's SDK sends its projected ServiceAccount token to STS, which
validates it against the cluster's OIDC provider (the issuer's JWKS) before any
role is assumed. moto hands out credentials for any string; the sandbox checks what
STS checks, with the API server's own signing key standing for the provider's JWKS:

- a signature the issuer's key does not verify, or no JWT at all: `InvalidIdentityToken`,
  "The web identity token that was passed could not be validated by AWS...";
- an issuer that is not the cluster's, or a role in another account than the sandbox's
  (the OIDC provider is registered in the role's account, and the sandbox is one
  account): `InvalidIdentityToken`, "No OpenIDConnect provider found in your account
  for <iss>";
- an audience without the provider's client id `sts.amazonaws.com`:
  `InvalidIdentityToken`, "Incorrect token audience" (what STS says to a token
  projected for the API server, say);
- a token past its `exp`: `ExpiredTokenException` (STS's model documents the message).

Not checked: the role's trust policy (the sandbox has no IAM roles; any role ARN is
assumed) and the token's `sub` against it.

    >>> claims = {"iss": "https://k", "aud": ["sts.amazonaws.com"], "exp": 200}
    >>> web_identity_claims("t", lambda token: claims, "https://k", now=100)["exp"]
    200
    >>> try:
    ...     web_identity_claims("t", lambda token: claims, "https://k", 100, "000000000000")
    ... except AwsRefusal as refusal:
    ...     print(refusal.message)
    No OpenIDConnect provider found in your account for https://k
    >>> try:
    ...     web_identity_claims("t", lambda token: claims, "https://k", 300)
    ... except AwsRefusal as refusal:
    ...     print(refusal.code)
    ExpiredTokenException
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.aws.inventory import ACCOUNT_ID
from sandbox.aws.refusal import AwsRefusal

STS_AUDIENCE = "sts.amazonaws.com"  # the client id EKS registers for the OIDC provider
NOT_VALIDATED = (
    "The web identity token that was passed could not be validated by AWS. Get a new "
    "identity token from the identity provider and then retry the request."
)
EXPIRED = (
    "The web identity token that was passed is expired or is not valid. Get a new identity "
    "token from the identity provider and then retry the request."
)
VerifiedClaims = Callable[[str], Mapping[str, Any] | None]
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/")


def role_account(role_arn: str) -> str:
    """The account of an IAM role ARN ("" when it is not one).

    >>> role_account("arn:aws:iam::123456789012:role/r"), role_account("r")
    ('123456789012', '')
    """
    match = _ROLE_ARN.match(role_arn)
    return match.group(1) if match else ""


def web_identity_claims(
    token: str, verified: VerifiedClaims, issuer: str, now: float, account: str = ACCOUNT_ID
) -> Mapping[str, Any]:
    """The token's claims when STS would accept it for a role in `account`; else the
    refusal STS answers."""
    claims = verified(token)
    if claims is None:
        raise AwsRefusal("InvalidIdentityToken", NOT_VALIDATED)
    if claims.get("iss") != issuer or account != ACCOUNT_ID:
        raise AwsRefusal(
            "InvalidIdentityToken",
            f"No OpenIDConnect provider found in your account for {claims.get('iss')}",
        )
    audiences = claims.get("aud")
    listed = [audiences] if isinstance(audiences, str) else list(audiences or [])
    if STS_AUDIENCE not in listed:
        raise AwsRefusal("InvalidIdentityToken", "Incorrect token audience")
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or now >= expiry:
        raise AwsRefusal("ExpiredTokenException", EXPIRED)
    return claims
