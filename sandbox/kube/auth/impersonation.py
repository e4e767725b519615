"""`kubectl --as`: acting as another user, as k8s.io/apiserver/pkg/endpoints/filters/
impersonation.go does it.

Each header becomes one request the requestor must be allowed to `impersonate`
(users, groups and serviceaccounts in the core group; uids and userextras in
authentication.k8s.io), and the impersonated user is built from them alone:

>>> wanted = parse({"Impersonate-User": ["system:serviceaccount:ns:sa"]})
>>> [(a.resource, a.namespace, a.name) for a in checks(wanted)]
[('serviceaccounts', 'ns', 'sa')]
>>> impersonated_user(wanted).groups
('system:serviceaccounts', 'system:serviceaccounts:ns', 'system:authenticated')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from sandbox.kube.auth.attributes import Attributes
from sandbox.kube.auth.user import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    UserInfo,
    service_account_groups,
    service_account_username,
    split_service_account_username,
)
from sandbox.kube.errors import ApiError

USER_HEADER = "impersonate-user"
GROUP_HEADER = "impersonate-group"
UID_HEADER = "impersonate-uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class Impersonation:
    """What the Impersonate-* headers ask for."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())


def parse(headers: Mapping[str, Sequence[str]]) -> Impersonation | None:
    """buildImpersonationRequests; None without Impersonate-* headers.

    `headers` maps lower- or mixed-case names to every value sent. Groups, extras or
    a uid without a user are a mistake upstream answers with a 500 (InternalError)."""
    lowered: dict[str, list[str]] = {}
    for name, values in headers.items():
        lowered.setdefault(name.lower(), []).extend(values)
    user = next(iter(lowered.get(USER_HEADER, [])), "")
    groups = tuple(lowered.get(GROUP_HEADER, []))
    uid = next(iter(lowered.get(UID_HEADER, [])), "")
    extra = tuple(
        (unquote(name.removeprefix(EXTRA_PREFIX)), value)
        for name, values in sorted(lowered.items())
        if name.startswith(EXTRA_PREFIX)
        for value in values
    )
    if not (user or groups or uid or extra):
        return None
    if not user:
        raise ApiError(
            500,
            "InternalError",
            "Internal error occurred: requested impersonation without impersonating a user",
        )
    return Impersonation(user, groups, uid, extra)


def checks(wanted: Impersonation) -> list[Attributes]:
    """The `impersonate` requests to authorize, one per header value, in upstream's order."""
    found: list[Attributes] = []
    account = split_service_account_username(wanted.user)
    if account is not None:
        found.append(Attributes("impersonate", True, "", "", "v1", "serviceaccounts", "", *account))
    else:
        found.append(Attributes("impersonate", True, "", "", "v1", "users", name=wanted.user))
    found += [
        Attributes("impersonate", True, "", "", "v1", "groups", name=g) for g in wanted.groups
    ]
    found += [
        Attributes("impersonate", True, "", AUTHENTICATION_GROUP, "v1", "userextras", key, name=v)
        for key, v in wanted.extra
    ]
    if wanted.uid:
        found.append(
            Attributes("impersonate", True, "", AUTHENTICATION_GROUP, "v1", "uids", name=wanted.uid)
        )
    return found


def impersonated_user(wanted: Impersonation) -> UserInfo:
    """The user the request runs as: a service account gets its groups unless groups were
    given; everyone but system:anonymous is system:authenticated (unless told otherwise)."""
    groups = list(wanted.groups)
    account = split_service_account_username(wanted.user)
    name = wanted.user
    if account is not None:
        name = service_account_username(*account)
        if not groups:
            groups = list(service_account_groups(account[0]))
    if name != ANONYMOUS:
        if not any(g in (ALL_AUTHENTICATED, ALL_UNAUTHENTICATED) for g in groups):
            groups.append(ALL_AUTHENTICATED)
    elif ALL_UNAUTHENTICATED not in groups:
        groups.append(ALL_UNAUTHENTICATED)
    extra: dict[str, tuple[str, ...]] = {}
    for key, value in wanted.extra:
        extra[key] = (*extra.get(key, ()), value)
    return UserInfo(name, wanted.uid, tuple(groups), extra)
