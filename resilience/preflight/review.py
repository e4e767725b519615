"""Asking the API server: one SelfSubjectAccessReview per need, bounded (the thin loop).

SelfSubjectAccessReview (authorization.k8s.io/v1) asks the cluster's own authorizer
(RBAC, webhooks, whatever it runs) whether the caller may make a request, so the
answer holds for this cluster and these credentials, unlike reading Roles. Each review
has `timeout` seconds and the whole check `budget` seconds; an API server that does
not answer fails the check (nothing has been disrupted yet, so refusing is safe).

A 404 on the endpoint means this API server serves no authorization API: every real
cluster serves it (kube-apiserver has since 1.6), an emulator may not. That is one
warning and the run goes on unchecked (`Review.served` False). A 403 on it means the
credentials may not even ask: that is a missing permission like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.errors import InvalidInputError
from resilience.preflight.needs import Needs
from resilience.preflight.permissions import Call, Permission, message, missing, order, resolve
from resilience.preflight.table import REVIEW

REVIEW_TIMEOUT = 5.0
REVIEW_BUDGET = 60.0
UNSERVED = (
    "this API server does not serve SelfSubjectAccessReview (authorization.k8s.io/v1);"
    " permissions not checked"
)
# create selfsubjectaccessreviews: what a 403 on the endpoint says is missing
ASK = next(iter(resolve(REVIEW, Call())))


class PreflightWarning(UserWarning):
    """The permissions could not be checked (no authorization API); the run goes on."""


class PermissionsMissingError(InvalidInputError):
    """The credentials lack permissions the run needs (or it uses what the table does not
    know); nothing was touched. The message is the one line `permissions.message` says."""


@dataclass(frozen=True)
class Review:
    """The cluster's answers: allowed or not, per permission asked."""

    answers: Mapping[Permission, bool] = field(default_factory=dict)
    served: bool = True  # False: no authorization API here (404); nothing was checked
    may_ask: bool = True  # False: a 403 on the reviews themselves; the rest unchecked


def ask(
    api: client.ApiClient,
    permissions: Iterable[Permission],
    timeout: float = REVIEW_TIMEOUT,
    budget: float = REVIEW_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> Review:
    """Review each permission in turn; stop at a 404 (not served) or a 403 (may not ask)."""
    reviews = client.AuthorizationV1Api(api)
    deadline = clock() + budget
    answers: dict[Permission, bool] = {}
    for permission in sorted(set(permissions), key=order):
        if clock() > deadline:
            raise InvalidInputError(
                f"preflight: {len(answers)} permission reviews took longer than {budget:g} s;"
                " the API server is too slow to check the run's permissions"
            )
        try:
            answer = reviews.create_self_subject_access_review(
                _body(permission), _request_timeout=(timeout, timeout)
            )
        except ApiException as error:
            if error.status == 404:
                return Review({}, served=False)
            if error.status == 403:
                return Review(answers, may_ask=False)
            raise InvalidInputError(
                f"preflight: SelfSubjectAccessReview for {permission} failed:"
                f" {error.status} {error.reason}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise InvalidInputError(
                f"preflight: SelfSubjectAccessReview for {permission}: no answer: {error}"
            ) from None
        status = answer.status
        answers[permission] = bool(status is not None and status.allowed)
    return Review(answers)


def _body(permission: Permission) -> client.V1SelfSubjectAccessReview:
    attributes = client.V1ResourceAttributes(
        verb=permission.verb,
        group=permission.group,
        resource=permission.resource,
        subresource=permission.subresource or None,
        namespace=permission.namespace or "",
        name=permission.name or None,
    )
    return client.V1SelfSubjectAccessReview(
        api_version="authorization.k8s.io/v1",
        kind="SelfSubjectAccessReview",
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes),
    )


def check(
    api: client.ApiClient,
    needs: Needs,
    warn: Callable[[str], None],
    timeout: float = REVIEW_TIMEOUT,
    budget: float = REVIEW_BUDGET,
) -> Review:
    """Refuse (PermissionsMissingError, one line) unless every need is allowed and every
    activity known; warn once and go on when the API server has no authorization API.

    Unknown activities are refused whatever the cluster answers: a run whose needs are
    not known cannot be said to be allowed.
    """
    review = ask(api, needs.permissions, timeout, budget)
    if not review.served:
        warn(UNSERVED)
        absent: list[Permission] = []
    elif not review.may_ask:
        absent = [ASK]  # and nothing else can be known
    else:
        absent = missing(needs.permissions, review.answers)
    if absent or needs.unknown:
        raise PermissionsMissingError(f"preflight: {message(absent, needs.unknown)}")
    return review
