"""IAM roles for service accounts: EKS's pod identity webhook, as a mutating admission step.

On EKS, a pod whose ServiceAccount carries `eks.amazonaws.com/role-arn` is mutated
by amazon-eks-pod-identity-webhook (pkg/handler/handler.go `getPodSpecPatch`,
`addEnvToContainer`) so that the AWS SDKs assume that role with the pod's own
projected token:

- a volume `aws-iam-token`, projected `serviceAccountToken` with audience
  `sts.amazonaws.com` (the SA's `eks.amazonaws.com/audience` overrides it),
  `expirationSeconds` 86400 (the pod's or the SA's `eks.amazonaws.com/token-expiration`
  overrides it, never below 600 s: `ValidateMinTokenExpiration`), path `token`,
  inserted first among the pod's volumes;
- in every container and init container (but those the pod's
  `eks.amazonaws.com/skip-containers` lists), in this order, each only when the
  container sets none of its group: `AWS_STS_REGIONAL_ENDPOINTS=regional` (the
  default since EKS 1.22; the SA's `eks.amazonaws.com/sts-regional-endpoints:
  "false"` turns it off), `AWS_DEFAULT_REGION` and `AWS_REGION` (the cluster's region),
  `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`, and the read-only mount at
  `/var/run/secrets/eks.amazonaws.com/serviceaccount`.

The sandbox adds one variable AWS has no need of: `AWS_ENDPOINT_URL`, the
sandbox's AWS endpoint, which stands for the route a real pod has to AWS's
public endpoints. Everything else the SDK does (AssumeRoleWithWebIdentity with the
token file, then signed calls with the temporary credentials) is what it does on EKS.

    >>> sa = {"metadata": {"annotations": {ROLE_ARN_ANNOTATION: "arn:aws:iam::1:role/r"}}}
    >>> pod = {"metadata": {}, "spec": {"containers": [{"name": "c"}]}}
    >>> settings = PodIdentitySettings("us-west-2", "http://127.0.0.1:4566")
    >>> mutated = with_pod_identity(pod, sa, settings)
    >>> print(*[e["name"] for e in mutated["spec"]["containers"][0]["env"]])
    ... # doctest: +NORMALIZE_WHITESPACE
    AWS_STS_REGIONAL_ENDPOINTS AWS_DEFAULT_REGION AWS_REGION AWS_ROLE_ARN
    AWS_WEB_IDENTITY_TOKEN_FILE AWS_ENDPOINT_URL
    >>> mutated["spec"]["volumes"][0]["name"]
    'aws-iam-token'
"""

from __future__ import annotations

import copy
import csv
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KubeObject = dict[str, Any]

ANNOTATION_DOMAIN = "eks.amazonaws.com"
ROLE_ARN_ANNOTATION = f"{ANNOTATION_DOMAIN}/role-arn"
AUDIENCE_ANNOTATION = f"{ANNOTATION_DOMAIN}/audience"
REGIONAL_STS_ANNOTATION = f"{ANNOTATION_DOMAIN}/sts-regional-endpoints"
TOKEN_EXPIRATION_ANNOTATION = f"{ANNOTATION_DOMAIN}/token-expiration"
SKIP_CONTAINERS_ANNOTATION = f"{ANNOTATION_DOMAIN}/skip-containers"
DEFAULT_AUDIENCE = "sts.amazonaws.com"
DEFAULT_EXPIRATION_SECONDS = 86400
MIN_EXPIRATION_SECONDS = 600  # pkg.MinTokenExpiration (ValidateMinTokenExpiration)
VOLUME_NAME = "aws-iam-token"
TOKEN_NAME = "token"
MOUNT_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
TOKEN_FILE = posixpath.join(MOUNT_PATH, TOKEN_NAME)
ROLE_KEYS = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
REGION_KEYS = ("AWS_REGION", "AWS_DEFAULT_REGION")
REGIONAL_STS_KEY = "AWS_STS_REGIONAL_ENDPOINTS"
ENDPOINT_KEY = "AWS_ENDPOINT_URL"


@dataclass(frozen=True)
class PodIdentitySettings:
    """The webhook's flags on this cluster, and the sandbox's AWS endpoint."""

    region: str
    endpoint_url: str = ""
    regional_sts: bool = True


def with_pod_identity(
    pod: KubeObject, service_account: KubeObject | None, settings: PodIdentitySettings
) -> KubeObject:
    """The pod as the webhook patches it; unchanged when its ServiceAccount has no role."""
    annotations: Mapping[str, str] = ((service_account or {}).get("metadata") or {}).get(
        "annotations"
    ) or {}
    role = annotations.get(ROLE_ARN_ANNOTATION, "")
    if not role:
        return pod
    pod_annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    expiration = _expiration(
        pod_annotations.get(TOKEN_EXPIRATION_ANNOTATION),
        _expiration(annotations.get(TOKEN_EXPIRATION_ANNOTATION), DEFAULT_EXPIRATION_SECONDS),
    )
    regional = settings.regional_sts
    if REGIONAL_STS_ANNOTATION in annotations:
        regional = annotations[REGIONAL_STS_ANNOTATION].lower() == "true"
    skipped = _skipped(pod_annotations.get(SKIP_CONTAINERS_ANNOTATION, ""))
    mutated = copy.deepcopy(pod)
    spec = mutated.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if container.get("name") not in skipped:
                _add_env(container, role, regional, settings)
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == VOLUME_NAME for v in volumes):
        audience = annotations.get(AUDIENCE_ANNOTATION, DEFAULT_AUDIENCE)
        volumes.insert(0, _token_volume(audience, expiration))
    return mutated


def _token_volume(audience: str, expiration: int) -> KubeObject:
    token = {"audience": audience, "expirationSeconds": expiration, "path": TOKEN_NAME}
    return {"name": VOLUME_NAME, "projected": {"sources": [{"serviceAccountToken": token}]}}


def _add_env(
    container: KubeObject, role: str, regional: bool, settings: PodIdentitySettings
) -> None:
    env = container.setdefault("env", [])
    names = {e.get("name") for e in env}
    if regional and REGIONAL_STS_KEY not in names:
        env.append({"name": REGIONAL_STS_KEY, "value": "regional"})
    if settings.region and not names.intersection(REGION_KEYS):
        env.append({"name": "AWS_DEFAULT_REGION", "value": settings.region})
        env.append({"name": "AWS_REGION", "value": settings.region})
    if not names.intersection(ROLE_KEYS):
        env.append({"name": "AWS_ROLE_ARN", "value": role})
        env.append({"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": TOKEN_FILE})
    if settings.endpoint_url and ENDPOINT_KEY not in names:
        env.append({"name": ENDPOINT_KEY, "value": settings.endpoint_url})
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("name") == VOLUME_NAME for m in mounts):
        mounts.append({"name": VOLUME_NAME, "readOnly": True, "mountPath": MOUNT_PATH})


def _expiration(text: str | None, default: int) -> int:
    """An annotation's expiration, raised to the minimum; an unparsable one is ignored."""
    if text is None:
        return default
    try:
        return max(int(text), MIN_EXPIRATION_SECONDS)
    except ValueError:
        return default


def _skipped(text: str) -> frozenset[str]:
    """The container names of `skip-containers` (one CSV record; a bad one skips none)."""
    if not text:
        return frozenset()
    try:
        return frozenset(next(csv.reader([text]), []))
    except csv.Error:
        return frozenset()
