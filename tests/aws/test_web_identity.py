"""IRSA against the sandbox's STS: AssumeRoleWithWebIdentity checks the projected token as
STS does (signature, issuer, audience, expiry), and boto3's own web-identity provider gets
credentials from it with nothing but the variables EKS's webhook sets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox.aws.endpoint import AwsEndpoint
from sandbox.aws.inventory import ACCOUNT_ID, REGION
from sandbox.aws.refusal import AwsRefusal
from sandbox.aws.webidentity import EXPIRED, NOT_VALIDATED, STS_AUDIENCE, web_identity_claims
from sandbox.kube.clock import ManualClock
from tests.aws.fakes import RecordingEffects

ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/harmonyflow-gameday-runner"
OTHER_ACCOUNT_ROLE = "arn:aws:iam::000000000000:role/harmonyflow-gameday-runner"
NAMESPACE, ACCOUNT = "harmonyflow-gameday", "gameday-runner"
GOOD: Mapping[str, Any] = {"iss": "https://k", "aud": [STS_AUDIENCE], "exp": 200}


@pytest.mark.parametrize(
    ("claims", "now", "code", "message"),
    [
        (None, 100, "InvalidIdentityToken", NOT_VALIDATED),
        ({**GOOD, "iss": "https://other"}, 100, "InvalidIdentityToken", "No OpenIDConnect"),
        ({**GOOD, "aud": ["https://k"]}, 100, "InvalidIdentityToken", "Incorrect token audience"),
        ({**GOOD, "aud": STS_AUDIENCE}, 100, None, None),  # a single audience as a string
        ({**GOOD, "exp": 100}, 100, "ExpiredTokenException", EXPIRED),
        ({**GOOD, "exp": None}, 100, "ExpiredTokenException", EXPIRED),
        (GOOD, 100, None, None),
    ],
)
def test_what_sts_refuses(
    claims: Mapping[str, Any] | None, now: float, code: str | None, message: str | None
) -> None:
    if code is None:
        assert web_identity_claims("t", lambda token: claims, "https://k", now) == claims
        return
    with pytest.raises(AwsRefusal) as refused:
        web_identity_claims("t", lambda token: claims, "https://k", now)
    assert refused.value.code == code
    assert message is not None and message in refused.value.message


def _sts(url: str) -> Any:
    return boto3.client(
        "sts",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


def _token(effects: RecordingEffects, audiences: tuple[str, ...], seconds: int = 3600) -> str:
    return effects.tokens.issue(NAMESPACE, ACCOUNT, audiences, seconds).token


def _assume(url: str, token: str, role: str = ROLE) -> Any:
    return _sts(url).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="gameday", WebIdentityToken=token
    )


def test_a_projected_sts_token_gets_credentials(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    answer = _assume(server.url, _token(effects, (STS_AUDIENCE,)))
    assert answer["Credentials"]["AccessKeyId"]
    assert answer["AssumedRoleUser"]["Arn"].endswith(
        ":assumed-role/harmonyflow-gameday-runner/gameday"
    )


@pytest.mark.parametrize(
    ("forge", "code", "text"),
    [
        (lambda e: _token(e, ()), "InvalidIdentityToken", "Incorrect token audience"),
        (lambda e: _token(e, (STS_AUDIENCE,))[:-4] + "AAAA", "InvalidIdentityToken", "validated"),
        (lambda e: "not-a-jwt", "InvalidIdentityToken", "validated"),
    ],
    ids=["api-audience", "bad-signature", "garbage"],
)
def test_sts_refuses_what_it_cannot_validate(
    endpoint: tuple[AwsEndpoint, RecordingEffects], forge: Any, code: str, text: str
) -> None:
    server, effects = endpoint
    with pytest.raises(ClientError) as refused:
        _assume(server.url, forge(effects))
    assert refused.value.response["Error"]["Code"] == code
    assert text in refused.value.response["Error"]["Message"]


def test_a_role_in_another_account_has_no_provider_for_the_cluster(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    """deploy/gameday's placeholder account: the annotation must name the cluster's account."""
    server, effects = endpoint
    with pytest.raises(ClientError) as refused:
        _assume(server.url, _token(effects, (STS_AUDIENCE,)), OTHER_ACCOUNT_ROLE)
    assert refused.value.response["Error"]["Code"] == "InvalidIdentityToken"
    assert "No OpenIDConnect provider found" in refused.value.response["Error"]["Message"]


def test_an_expired_token_is_refused(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, effects = endpoint
    token = _token(effects, (STS_AUDIENCE,), seconds=600)
    clock = effects.tokens.clock
    assert isinstance(clock, ManualClock)
    clock.advance(601)
    with pytest.raises(ClientError) as refused:
        _assume(server.url, token)
    assert refused.value.response["Error"]["Code"] == "ExpiredTokenException"


def test_boto3s_web_identity_provider_works_with_the_webhooks_variables(
    endpoint: tuple[AwsEndpoint, RecordingEffects], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a pod with the pod identity webhook's env does: no keys, a role and a token
    file; boto3 exchanges the token at STS (AWS_ENDPOINT_URL: the sandbox's), then signs."""
    server, effects = endpoint
    token_file = tmp_path / "token"
    token_file.write_text(_token(effects, (STS_AUDIENCE,)))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "regional")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    session = boto3.Session()
    credentials = session.get_credentials()
    assert credentials is not None and credentials.method == "assume-role-with-web-identity"
    identity = session.client("sts").get_caller_identity()
    assert ":assumed-role/harmonyflow-gameday-runner/" in identity["Arn"]
    instances = session.client("rds").describe_db_instances()["DBInstances"]
    assert [i["DBInstanceIdentifier"] for i in instances] == ["harmonyflow-db"]
