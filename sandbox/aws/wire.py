"""The wire-level answers AWS gives before any service logic runs.

moto answers an unknown action with an HTML 500 page and accepts parameters
AWS rejects; clients then see "invalid XML received" instead of the error code
AWS sends. `check_request` decides, as a pure function of the request, what AWS
would refuse; `AwsWireMiddleware` applies it in front of moto, keeps moto's
test-only `/moto-api` away from clients, and turns any crash into AWS's
`InternalFailure` XML so the endpoint keeps serving.

    >>> check_request("rds", {"Action": "Bogus"}).code
    'InvalidAction'
    >>> check_request("rds", {"Action": "RebootDBInstance", "ForceFailover": "maybe"}).code
    'InvalidParameterValue'
    >>> check_request("rds", {"Action": "DescribeDBInstances"}) is None
    True
    >>> check_request(None, {"Action": "AssumeRoleWithWebIdentity"}) is None  # unsigned
    True
    >>> check_request(None, {"Action": "DescribeDBInstances"}).code
    'MissingAuthenticationToken'
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import botocore.session

log = logging.getLogger(__name__)
SERVED = ("ec2", "rds", "elasticache", "sts", "fis")
# REST-JSON services: the operation is in the method and path (moto routes them), the
# parameters in a JSON body, and errors are JSON.
REST_JSON = frozenset({"fis"})
MAX_BODY_BYTES = 1 << 20
# STS actions botocore sends unsigned (their model's `"auth": ["smithy.api#noAuth"]`)
UNSIGNED_STS_ACTIONS = frozenset({"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})
_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_BOOLEAN_PARAMETERS = {"ForceFailover", "DryRun", "Force", "ApplyImmediately"}
_RECORD_RANGE = {"rds": (20, 100), "elasticache": (20, 100)}
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class AwsError:
    code: str
    message: str
    status: int = 400
    sender: bool = True


@cache
def operations(service: str) -> frozenset[str]:
    """The service's action names, from botocore's own service model."""
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def service_of(authorization: str) -> str | None:
    """The service a SigV4 `Authorization` header was signed for."""
    match = _CREDENTIAL.search(authorization)
    return match.group(2) if match else None


def check_request(service: str | None, params: dict[str, str]) -> AwsError | None:
    """What AWS would answer instead of running the action, or None to go on."""
    if service is None and params.get("Action") in UNSIGNED_STS_ACTIONS:
        service = "sts"  # the caller has no credentials yet: the token is the credential
    if service is None:
        return AwsError(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token (sign it with SigV4).",
            403,
        )
    if service not in SERVED:
        return AwsError(
            "InvalidAction",
            f"The sandbox AWS endpoint serves {', '.join(SERVED)}, not {service}.",
        )
    if service in REST_JSON:
        return None
    action = params.get("Action", "")
    if action not in operations(service):
        return AwsError(
            "InvalidAction", f"The action {action or '(none)'} is not valid for this web service."
        )
    for name, value in params.items():
        if name in _BOOLEAN_PARAMETERS and value.lower() not in ("true", "false"):
            return AwsError(
                "InvalidParameterValue",
                f"Value ({value}) for parameter {name} is invalid. Must be a boolean.",
            )
    if "MaxRecords" in params and service in _RECORD_RANGE:
        low, high = _RECORD_RANGE[service]
        if not params["MaxRecords"].isdigit() or not low <= int(params["MaxRecords"]) <= high:
            return AwsError(
                "InvalidParameterValue",
                f"Invalid value {params['MaxRecords']} for MaxRecords."
                f" Must be between {low} and {high}",
            )
    return None


def render_error(service: str | None, error: AwsError, request_id: str) -> bytes:
    """The error body in the service's protocol (EC2's own shape, the query one, or JSON)."""
    if service in REST_JSON:
        return json.dumps({"__type": error.code, "message": error.message}).encode()
    code, message = escape(error.code), escape(error.message)
    if service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:
        kind = "Sender" if error.sender else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


class AwsWireMiddleware:
    """In front of moto: AWS's refusals, and never an HTML page or a dropped connection."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        service = service_of(environ.get("HTTP_AUTHORIZATION", ""))
        if environ.get("PATH_INFO", "/").startswith("/moto-api"):
            return self._answer(
                start_response, service, AwsError("InvalidAction", "not an AWS API", 404)
            )
        body = self._read_body(environ)
        params = _params(environ, body)
        refusal = check_request(service, params)
        if refusal is not None:
            return self._answer(start_response, service, refusal)
        return self._run(environ, start_response, service, params.get("Action", ""))

    def _run(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        service: str | None,
        action: str,
    ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        try:
            chunks = b"".join(self._app(environ, capture))
        except Exception as error:  # the outermost loop: log it, answer, keep serving
            log.exception("AWS endpoint: %s %s failed", service, action)
            return self._answer(
                start_response, service, _internal(f"{type(error).__name__}: {error}")
            )
        headers = captured.get("headers", [])
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if captured.get("status", "").startswith("5") and "html" in content_type:
            failure = _first_error_line(chunks)
            if failure.startswith("NotImplementedError"):
                return self._answer(
                    start_response,
                    service,
                    AwsError(
                        "InvalidAction", f"The sandbox AWS endpoint does not implement {action}."
                    ),
                )
            log.error("AWS endpoint: %s %s: moto failed: %s", service, action, failure)
            return self._answer(
                start_response, service, _internal(f"the sandbox could not run {action}")
            )
        start_response(captured["status"], headers)
        return [chunks]

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY_BYTES)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    @staticmethod
    def _answer(
        start_response: Callable[..., Any], service: str | None, error: AwsError
    ) -> list[bytes]:
        body = render_error(service, error, str(uuid.uuid4()))
        reason = {
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            500: "Internal Server Error",
        }
        if service in REST_JSON:
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", error.code)]
        else:
            headers = [("Content-Type", "text/xml")]
        start_response(
            f"{error.status} {reason.get(error.status, 'Error')}",
            [*headers, ("Content-Length", str(len(body)))],
        )
        return [body]


def _params(environ: dict[str, Any], body: bytes) -> dict[str, str]:
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in {**query, **form}.items()}


def _internal(message: str) -> AwsError:
    return AwsError("InternalFailure", message[:300], 500, sender=False)


def _first_error_line(page: bytes) -> str:
    text = page.decode("utf-8", "replace")
    match = re.search(r"(\w+Error: [^\n<]+)", text)
    return match.group(1) if match else text[:200]
