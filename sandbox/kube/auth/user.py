"""Who a request is: upstream's `user.Info`, and the names Kubernetes gives its identities.

Names and groups as k8s.io/apiserver/pkg/authentication/user/user.go and
.../authentication/serviceaccount/util.go spell them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANONYMOUS = "system:anonymous"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
SYSTEM_PRIVILEGED_GROUP = "system:masters"
MONITORING_GROUP = "system:monitoring"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
SERVICE_ACCOUNT_GROUP_PREFIX = "system:serviceaccounts:"
# The sandbox's own kubeconfig user (kubeadm's admin.conf names it so; its group is
# cluster-admin's through the bootstrap ClusterRoleBinding `cluster-admin`).
ADMIN_USER = "kubernetes-admin"
# Extra keys the service account authenticator sets (serviceaccount/claims.go).
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """authentication.k8s.io/v1 UserInfo (SelfSubjectReview, TokenReview): empty omitted."""
        body: dict[str, object] = {"username": self.name}
        if self.uid:
            body["uid"] = self.uid
        if self.groups:
            body["groups"] = list(self.groups)
        if self.extra:
            body["extra"] = {key: list(values) for key, values in self.extra.items()}
        return body


ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(ALL_UNAUTHENTICATED,))


def service_account_username(namespace: str, name: str) -> str:
    """serviceaccount.MakeUsername: `system:serviceaccount:<ns>:<name>`."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def split_service_account_username(username: str) -> tuple[str, str] | None:
    """serviceaccount.SplitUsername: (namespace, name), or None for any other user.

    >>> split_service_account_username("system:serviceaccount:ns:sa")
    ('ns', 'sa')
    >>> split_service_account_username("system:serviceaccount:ns") is None
    True
    """
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """serviceaccount.MakeGroupNames: every service account's group and its namespace's."""
    return (ALL_SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNT_GROUP_PREFIX}{namespace}")


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """group.AuthenticatedGroupAdder: every authenticated user is in system:authenticated."""
    if ALL_AUTHENTICATED in user.groups or ALL_UNAUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, ALL_AUTHENTICATED), user.extra)
