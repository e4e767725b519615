"""The API server's filter chain for every request: authenticate -> impersonate -> authorize.

Upstream's order (k8s.io/apiserver/pkg/server/config.go DefaultBuildHandlerChain:
WithAuthentication, WithImpersonation, WithAuthorization), with kube-apiserver's
authorizer chain for `--authorization-mode=Node,RBAC`: system:masters is allowed
everything first (authorizerfactory.NewPrivilegedGroups), then RBAC. The sandbox
has no node identities, so no Node authorizer. Decisions are the pure functions
of this package; `Guard` only reads the store and raises the Status errors.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sandbox.kube.auth import bootstrap, impersonation, rbac, reviews
from sandbox.kube.auth.attributes import Attributes, request_attributes
from sandbox.kube.auth.authn import Credentials, authenticate
from sandbox.kube.auth.rbac import Decision, Rules
from sandbox.kube.auth.tokens import TokenIssuer, Verdict
from sandbox.kube.auth.user import (
    ADMIN_USER,
    SYSTEM_PRIVILEGED_GROUP,
    UserInfo,
    with_authenticated_group,
)
from sandbox.kube.clock import rfc3339
from sandbox.kube.errors import ApiError, conflict, not_found
from sandbox.kube.store import Store

KubeObject = dict[str, Any]
ROLES = "rbac.authorization.k8s.io/roles"
ROLE_BINDINGS = "rbac.authorization.k8s.io/rolebindings"
CLUSTER_ROLES = "rbac.authorization.k8s.io/clusterroles"
CLUSTER_ROLE_BINDINGS = "rbac.authorization.k8s.io/clusterrolebindings"
ADMIN = UserInfo(ADMIN_USER, groups=(SYSTEM_PRIVILEGED_GROUP,))


class StorePolicy:
    """rbac.Policy over the store's objects (read-only snapshots, like informer caches)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def cluster_role_bindings(self) -> Iterable[KubeObject]:
        return self.store.snapshot(CLUSTER_ROLE_BINDINGS)

    def role_bindings(self, namespace: str) -> Iterable[KubeObject]:
        return self.store.snapshot(ROLE_BINDINGS, namespace)

    def cluster_role(self, name: str) -> KubeObject | None:
        return self.store.find(CLUSTER_ROLES, "", name)

    def role(self, namespace: str, name: str) -> KubeObject | None:
        return self.store.find(ROLES, namespace, name)


def decide(policy: rbac.Policy, user: UserInfo, attributes: Attributes) -> Decision:
    """The authorizer chain: privileged group, then RBAC."""
    if SYSTEM_PRIVILEGED_GROUP in user.groups:
        return Decision(True)
    return rbac.authorize(policy, user, attributes)


def unauthorized() -> ApiError:
    """WithAuthentication's failure: apierrors.NewUnauthorized("Unauthorized")."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: UserInfo, attributes: Attributes, reason: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        rbac.forbidden_status_message(user, attributes, reason),
        name=attributes.name,
        kind=attributes.resource,
        group=attributes.api_group,
    )


def install_bootstrap_policy(store: Store) -> None:
    """The `rbac/bootstrap-roles` post-start hook: create what is missing, keep the rest."""
    for resource, objects in (
        (CLUSTER_ROLES, bootstrap.cluster_roles()),
        (CLUSTER_ROLE_BINDINGS, bootstrap.cluster_role_bindings()),
    ):
        for obj in objects:
            if store.find(resource, "", obj["metadata"]["name"]) is None:
                store.create(resource, obj)


class Guard:
    """Who is asking and whether they may: one call per request, before routing."""

    def __init__(self, store: Store, tokens: TokenIssuer, admin_token: str = "") -> None:
        self.store = store
        self.policy = StorePolicy(store)
        self.tokens = tokens
        # A bearer token for the sandbox's kubeconfig user, like a --token-auth-file
        # line; never logged (the kubeconfig file, mode 0600, is where clients read it).
        self.admin_token = admin_token or secrets.token_urlsafe(32)

    def token_user(self, token: str) -> UserInfo | None:
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN
        return self.tokens.authenticate(token)

    def admit(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, Sequence[str]],
    ) -> UserInfo:
        """The user the request acts as; 401 or 403 Status errors otherwise."""
        credentials = Credentials(
            _first(headers, "authorization"), _first(headers, "sec-websocket-protocol")
        )
        user = authenticate(credentials, path, self.token_user)
        if user is None:
            raise unauthorized()
        wanted = impersonation.parse(headers)
        if wanted is not None:
            for check in impersonation.checks(wanted):
                verdict = decide(self.policy, user, check)
                if not verdict.allowed:
                    raise forbidden(user, check, verdict.reason)
            user = impersonation.impersonated_user(wanted)
        attributes = request_attributes(method, path, query)
        verdict = decide(self.policy, user, attributes)
        if not verdict.allowed:
            raise forbidden(user, attributes, verdict.reason)
        return user

    # ---- the review APIs and TokenRequest ----

    def decide_for(self, user: UserInfo, attributes: Attributes) -> Decision:
        return decide(self.policy, user, attributes)

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        """RBAC's rules only: the privileged-group authorizer resolves none (system:masters'
        rules come from the `cluster-admin` binding)."""
        return rbac.rules_for(self.policy, user, namespace)

    def check_token(self, token: str, audiences: tuple[str, ...]) -> Verdict:
        """TokenReview: the admin token is audience-agnostic, as static tokens are."""
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Verdict(with_authenticated_group(ADMIN), audiences or self.tokens.api_audiences)
        verdict = self.tokens.review(token, audiences)
        if verdict.user is None:
            return verdict
        return Verdict(with_authenticated_group(verdict.user), verdict.audiences)

    def review(self, plural: str, namespace: str | None, body: Any, user: UserInfo) -> KubeObject:
        """The answer (201) of a review API's create."""
        if plural == "selfsubjectaccessreviews":
            return reviews.self_subject_access_review(body, user, self.decide_for)
        if plural == "subjectaccessreviews":
            return reviews.subject_access_review(body, self.decide_for)
        if plural == "localsubjectaccessreviews":
            return reviews.subject_access_review(body, self.decide_for, namespace or "")
        if plural == "selfsubjectrulesreviews":
            return reviews.self_subject_rules_review(body, user, self.rules_for)
        if plural == "selfsubjectreviews":
            return reviews.self_subject_review(user)
        if plural == "tokenreviews":
            return reviews.token_review(body, self.check_token)
        raise not_found(plural, "")

    def token_request(self, namespace: str, name: str, body: Any) -> KubeObject:
        """POST serviceaccounts/<name>/token: a TokenRequest answered with a fresh token."""
        audiences, seconds, pod = reviews.token_request_spec(body)
        ref = (body.get("spec") or {}).get("boundObjectRef") or {}
        if pod is not None:
            found = self.store.find("pods", namespace, pod)
            if found is None:
                raise not_found("pods", pod)
            if ref.get("uid") and ref["uid"] != found["metadata"]["uid"]:
                raise conflict(
                    "Pod",
                    pod,
                    "",
                    f"the UID in the bound object reference ({ref['uid']}) does not match the "
                    "UID in record. The object might have been deleted and then recreated",
                )
        token, expiration = self.tokens.issue(namespace, name, audiences, seconds, pod)
        return reviews.token_request_answer(
            body,
            namespace,
            name,
            audiences or self.tokens.api_audiences,
            seconds,
            token,
            rfc3339(expiration),
        )


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str:
    for key, values in headers.items():
        if key.lower() == name and values:
            return values[0]
    return ""
