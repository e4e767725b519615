"""The review APIs, as pure answers to a request body: who am I, may I, what may I.

Upstream registries: pkg/registry/authorization/{selfsubjectaccessreview,
subjectaccessreview,localsubjectaccessreview,selfsubjectrulesreview}/rest.go,
pkg/registry/authentication/{selfsubjectreview,tokenreview}/storage.go and
pkg/registry/core/serviceaccount/storage/token.go (TokenRequest). Each answer
is the request echoed with a `status`, created (201), never stored. Validation
messages are pkg/apis/authorization/validation's.

>>> allow_all = lambda user, attributes: Decision(True)
>>> review = self_subject_access_review({"spec": {"resourceAttributes": {
...     "verb": "delete", "resource": "pods", "namespace": "ns"}}}, UserInfo("me"), allow_all)
>>> review["status"]
{'allowed': True}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.kube.auth.attributes import Attributes
from sandbox.kube.auth.rbac import Decision, Rules
from sandbox.kube.auth.tokens import (
    DEFAULT_EXPIRATION_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    Verdict,
)
from sandbox.kube.auth.user import UserInfo
from sandbox.kube.errors import ApiError, Cause, bad_request, invalid

KubeObject = dict[str, Any]
Decide = Callable[[UserInfo, Attributes], Decision]
AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"


def _echo(body: Mapping[str, Any], kind: str, group: str, status: KubeObject) -> KubeObject:
    metadata = dict(body.get("metadata") or {})
    metadata.setdefault("creationTimestamp", None)
    return {
        "kind": kind,
        "apiVersion": f"{group}/v1",
        "metadata": metadata,
        "spec": dict(body.get("spec") or {}),
        "status": status,
    }


def _spec(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("spec") or {}, Mapping):
        raise bad_request("the request body must be a JSON object with an object spec")
    return body.get("spec") or {}


def _attributes(kind: str, spec: Mapping[str, Any]) -> Attributes:
    """ResourceAttributesFrom / NonResourceAttributesFrom of the one attributes given."""
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        which = "nonResourceAttributes" if resource is not None else "resourceAttributes"
        message = (
            "cannot be specified in combination with resourceAttributes"
            if resource is not None
            else "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        )
        raise _invalid(kind, f"spec.{which}", message)
    if non_resource is not None:
        if not isinstance(non_resource, Mapping):
            raise bad_request("spec.nonResourceAttributes must be an object")
        return Attributes(
            str(non_resource.get("verb", "")), False, path=str(non_resource.get("path", ""))
        )
    if not isinstance(resource, Mapping):
        raise bad_request("spec.resourceAttributes must be an object")
    return Attributes(
        str(resource.get("verb", "")),
        True,
        api_group=str(resource.get("group", "")),
        api_version=str(resource.get("version", "")) or "*",
        resource=str(resource.get("resource", "")),
        subresource=str(resource.get("subresource", "")),
        namespace=str(resource.get("namespace", "")),
        name=str(resource.get("name", "")),
    )


def _invalid(kind: str, field: str, message: str, value: str = "null") -> ApiError:
    group = AUTHENTICATION if kind in ("TokenRequest", "TokenReview") else AUTHORIZATION
    return invalid(
        kind, "", [Cause("FieldValueInvalid", f"Invalid value: {value}: {message}", field)], group
    )


def _access_status(decision: Decision) -> KubeObject:
    status: KubeObject = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def self_subject_access_review(body: Any, user: UserInfo, decide: Decide) -> KubeObject:
    """May I? (`kubectl auth can-i`), asked for the requesting user."""
    spec = _spec(body)
    attributes = _attributes("SelfSubjectAccessReview", spec)
    return _echo(
        body, "SelfSubjectAccessReview", AUTHORIZATION, _access_status(decide(user, attributes))
    )


def subject_user(spec: Mapping[str, Any]) -> UserInfo:
    extra = {str(k): tuple(str(v) for v in vs) for k, vs in (spec.get("extra") or {}).items()}
    return UserInfo(
        str(spec.get("user", "")),
        str(spec.get("uid", "")),
        tuple(str(g) for g in spec.get("groups") or ()),
        extra,
    )


def subject_access_review(body: Any, decide: Decide, namespace: str | None = None) -> KubeObject:
    """May they? SubjectAccessReview, or LocalSubjectAccessReview when `namespace` is the
    URL's (the attributes' namespace must be that one)."""
    kind = "SubjectAccessReview" if namespace is None else "LocalSubjectAccessReview"
    spec = _spec(body)
    attributes = _attributes(kind, spec)
    if not spec.get("user") and not spec.get("groups"):
        raise _invalid(kind, "spec.user", "at least one of user or group must be specified", '""')
    if namespace is not None:
        if not attributes.resource_request:
            raise _invalid(kind, "spec.nonResourceAttributes", "disallowed on this kind of request")
        if attributes.namespace != namespace:
            raise bad_request(
                f"spec.resourceAttributes.namespace must match namespace: {namespace}"
            )
    decision = decide(subject_user(spec), attributes)
    return _echo(body, kind, AUTHORIZATION, _access_status(decision))


def self_subject_rules_review(
    body: Any, user: UserInfo, rules_for: Callable[[UserInfo, str], Rules]
) -> KubeObject:
    """What may I do in a namespace? (`kubectl auth can-i --list`)."""
    spec = _spec(body)
    rules = rules_for(user, str(spec.get("namespace", "")))
    status: KubeObject = {
        "resourceRules": [dict(r) for r in rules.resource_rules],
        "nonResourceRules": [dict(r) for r in rules.non_resource_rules],
        "incomplete": False,
    }
    if rules.errors:
        unique = list(dict.fromkeys(rules.errors))
        status["evaluationError"] = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
    return _echo({"spec": spec}, "SelfSubjectRulesReview", AUTHORIZATION, status)


def self_subject_review(user: UserInfo) -> KubeObject:
    """Who am I? (`kubectl auth whoami`)."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": f"{AUTHENTICATION}/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": user.to_json()},
    }


def token_review(body: Any, check: Callable[[str, tuple[str, ...]], Verdict]) -> KubeObject:
    """Is this token good, and whose is it? (TokenReview; webhooks and proxies ask it)."""
    spec = _spec(body)
    token = str(spec.get("token", ""))
    if not token:
        raise bad_request("token is required for TokenReview in authentication")
    verdict = check(token, tuple(str(a) for a in spec.get("audiences") or ()))
    status: KubeObject = {}
    if verdict.user is not None:
        status = {
            "authenticated": True,
            "user": verdict.user.to_json(),
            "audiences": list(verdict.audiences),
        }
    elif verdict.error:
        status["error"] = verdict.error
    spec_out = {k: v for k, v in spec.items() if k != "token"}
    return _echo(
        {"metadata": body.get("metadata"), "spec": {**spec_out, "token": token}},
        "TokenReview",
        AUTHENTICATION,
        status,
    )


def token_request_spec(body: Any) -> tuple[tuple[str, ...], int, str | None]:
    """(audiences, expirationSeconds, bound pod name) of a TokenRequest, validated."""
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a TokenRequest object")
    spec = _spec(body)
    seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION_SECONDS)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise bad_request("spec.expirationSeconds must be an integer")
    if seconds < MIN_EXPIRATION_SECONDS:
        raise _invalid(
            "TokenRequest",
            "spec.expirationSeconds",
            "may not specify a duration less than 10 minutes",
            str(seconds),
        )
    if seconds > MAX_EXPIRATION_SECONDS:
        raise _invalid(
            "TokenRequest",
            "spec.expirationSeconds",
            "may not specify a duration larger than 2^32 seconds",
            str(seconds),
        )
    ref = spec.get("boundObjectRef")
    pod = None
    if ref:
        if ref.get("kind") != "Pod":
            raise _invalid(
                "TokenRequest",
                "spec.boundObjectRef.kind",
                'the sandbox binds tokens to pods only (supported: "Pod")',
                f'"{ref.get("kind")}"',
            )
        pod = str(ref.get("name", ""))
    return tuple(str(a) for a in spec.get("audiences") or ()), seconds, pod


def token_request_answer(
    body: Mapping[str, Any],
    namespace: str,
    name: str,
    audiences: tuple[str, ...],
    seconds: int,
    token: str,
    expiration: str,
) -> KubeObject:
    spec = dict(body.get("spec") or {})
    spec.update(audiences=list(audiences), expirationSeconds=seconds)
    return {
        "kind": "TokenRequest",
        "apiVersion": f"{AUTHENTICATION}/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expiration},
    }
