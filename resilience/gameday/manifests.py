"""Checks of the scheduled game day's manifests and container (pure, over parsed data).

The CronJob runs chaos against a real cluster with a ServiceAccount, so its RBAC
is part of the blast radius: it may hold only the verbs and resources the
experiments and the watches use (`ALLOWED`), no wildcard, nothing on Secrets,
and everything namespaced except what Kubernetes keeps cluster-scoped (nodes).
The container must run as a non-root user from a pinned base image, with no
credential baked in. Each function returns findings, one line each; the
conformance suite asserts there are none, and tests seed faults to show that
each finding can fire.

    >>> rbac_findings([{"kind": "ClusterRole", "metadata": {"name": "x"},
    ...                 "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]}])
    ... # doctest: +NORMALIZE_WHITESPACE
    ['ClusterRole/x rule 0: wildcard verb', 'ClusterRole/x rule 0: access to secrets',
     'ClusterRole/x rule 0: /secrets is not used by any experiment']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# (apiGroup, resource) -> the verbs the experiments and monitors use
ALLOWED: Mapping[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"get", "list", "watch", "delete"}),
    ("", "pods/eviction"): frozenset({"create"}),
    ("", "nodes"): frozenset({"get", "list", "watch", "patch"}),
    ("apps", "deployments"): frozenset({"get", "list", "watch", "patch", "create", "delete"}),
    ("apps", "replicasets"): frozenset({"get", "list", "watch"}),
    ("discovery.k8s.io", "endpointslices"): frozenset({"get", "list", "watch"}),
    ("autoscaling", "horizontalpodautoscalers"): frozenset({"get", "list", "watch"}),
    ("policy", "poddisruptionbudgets"): frozenset({"get", "list", "watch"}),
    ("chaos-mesh.org", "networkchaos"): frozenset({"create", "get", "delete"}),
}
CLUSTER_SCOPED = frozenset({("", "nodes")})
NEVER = frozenset({"secrets", "serviceaccounts/token", "clusterroles", "roles", "rolebindings"})
DANGEROUS_VERBS = frozenset({"escalate", "bind", "impersonate"})
_SECRET_NAME = re.compile(r"secret|token|passw|credential|api[_-]?key|access[_-]?key|webhook", re.I)


def rbac_findings(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Least privilege over every Role and ClusterRole of `documents`."""
    found: list[str] = []
    for doc in documents:
        kind = doc.get("kind")
        if kind not in ("Role", "ClusterRole"):
            continue
        ref = f"{kind}/{(doc.get('metadata') or {}).get('name')}"
        if doc.get("aggregationRule"):
            found.append(f"{ref}: aggregation pulls in rules nobody reviewed")
        for index, rule in enumerate(doc.get("rules") or []):
            found += [
                f"{ref} rule {index}: {f}" for f in _rule_findings(rule, kind == "ClusterRole")
            ]
    return found


def _rule_findings(rule: Mapping[str, Any], cluster_wide: bool) -> list[str]:
    groups = list(rule.get("apiGroups") or [])
    resources = list(rule.get("resources") or [])
    verbs = set(rule.get("verbs") or [])
    found = []
    if rule.get("nonResourceURLs"):
        found.append("non-resource URLs are not used")
    if "*" in verbs:
        found.append("wildcard verb")
    if "*" in resources or "*" in groups:
        found.append("wildcard resource or API group")
    found += [f"dangerous verb {v}" for v in sorted(verbs & DANGEROUS_VERBS)]
    for resource in resources:
        if resource in NEVER:
            found.append(f"access to {resource}")
        for group in groups:
            allowed = ALLOWED.get((group, resource))
            if allowed is None:
                found.append(f"{group}/{resource} is not used by any experiment")
                continue
            extra = sorted(verbs - allowed - {"*"})
            if extra:
                found.append(f"{group}/{resource}: verbs {', '.join(extra)} are not used")
            if cluster_wide and (group, resource) not in CLUSTER_SCOPED:
                found.append(f"{group}/{resource} must be namespaced (a Role), not cluster-wide")
    return found


def cronjob_findings(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """The CronJob: its own ServiceAccount, non-root and unprivileged, one run at a time,
    no literal credential in its environment, notifications only from an optional Secret."""
    found: list[str] = []
    accounts = {
        (d.get("metadata") or {}).get("name")
        for d in documents
        if d.get("kind") == "ServiceAccount"
    }
    jobs = [d for d in documents if d.get("kind") == "CronJob"]
    if not jobs:
        return ["no CronJob"]
    for job in jobs:
        ref = f"CronJob/{(job.get('metadata') or {}).get('name')}"
        spec = job.get("spec") or {}
        pod = (
            ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec", {})
        )
        if spec.get("concurrencyPolicy") != "Forbid":
            found.append(f"{ref}: concurrencyPolicy must be Forbid (never two game days at once)")
        account = pod.get("serviceAccountName")
        if account not in accounts:
            found.append(
                f"{ref}: serviceAccountName {account!r} is not a ServiceAccount of its own"
            )
        security = pod.get("securityContext") or {}
        if not security.get("runAsNonRoot") or security.get("runAsUser") == 0:
            found.append(f"{ref}: the pod must run as non-root")
        if pod.get("hostNetwork") or pod.get("hostPID"):
            found.append(f"{ref}: host namespaces are not needed")
        for container in pod.get("containers") or []:
            found += [
                f"{ref}: container {container.get('name')}: {f}" for f in _container(container)
            ]
    return found


def _container(container: Mapping[str, Any]) -> list[str]:
    found = []
    image = str(container.get("image") or "")
    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        found.append(f"image {image!r} is not pinned to a version")
    security = container.get("securityContext") or {}
    if security.get("privileged") or security.get("allowPrivilegeEscalation", True):
        found.append("must not be privileged or allow privilege escalation")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        found.append("must drop all capabilities")
    for variable in container.get("env") or []:
        name = str(variable.get("name"))
        if _SECRET_NAME.search(name) and "value" in variable:
            found.append(f"env {name} carries a literal value; read it from an optional Secret")
        secret = (variable.get("valueFrom") or {}).get("secretKeyRef")
        if secret is not None and "NOTIFY" in name and not secret.get("optional"):
            found.append(
                f"env {name}: notifications must be off unless configured (optional: true)"
            )
    return found


def dockerfile_findings(text: str, dockerignore: str = "") -> list[str]:
    """A pinned base image, a non-root final USER, no secret in ENV/ARG/COPY, and a
    .dockerignore that keeps local state (the sandbox, reports, venvs) out.

        >>> dockerfile_findings("FROM python:latest\\nENV API_TOKEN=abc\\n")
        ... # doctest: +NORMALIZE_WHITESPACE
        ["base image 'python:latest' is not pinned (a version tag or a digest)",
         'ENV API_TOKEN carries a value in the image', 'no USER: the container runs as root',
         '.dockerignore does not exclude .sandbox', '.dockerignore does not exclude reports',
         '.dockerignore does not exclude .venv', '.dockerignore does not exclude .git',
         '.dockerignore does not exclude **/*.env']
    """
    found: list[str] = []
    lines = _instructions(text)
    images = [args.split()[0] for op, args in lines if op == "FROM" and args.split()]
    if not images:
        found.append("no FROM")
    for image in images:
        if not _pinned(image):
            found.append(f"base image {image!r} is not pinned (a version tag or a digest)")
    for op, args in lines:
        found += _instruction_findings(op, args)
    users = [args.split()[0] for op, args in lines if op == "USER" and args.split()]
    if not users:
        found.append("no USER: the container runs as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        found.append(f"the last USER is {users[-1]}: the container runs as root")
    ignored = {line.strip() for line in dockerignore.splitlines() if line.strip()}
    for needed in (".sandbox", "reports", ".venv", ".git", "**/*.env"):
        if needed not in ignored:
            found.append(f".dockerignore does not exclude {needed}")
    return found


def _instruction_findings(op: str, args: str) -> list[str]:
    found = []
    if op in ("ENV", "ARG"):
        for name, value in _assignments(args):
            if _SECRET_NAME.search(name) and value:
                found.append(f"{op} {name} carries a value in the image")
    if op in ("COPY", "ADD") and re.search(r"\.env\b|kubeconfig|\.kube\b|id_rsa|\.pem\b", args):
        found.append(f"{op} {args}: copies credentials into the image")
    if op == "RUN":
        found += _unlocked_installs(args)
    return found


def _unlocked_installs(run: str) -> list[str]:
    """The image must run what CI tested: every `pip install` takes the hash-checked lock
    file, or installs the project alone on top of it (`--no-deps`); anything else resolves
    versions on the day the image is built.

    >>> _unlocked_installs("pip install --require-hashes --no-deps -r requirements/lock.txt")
    []
    >>> [finding.split(":")[0] for finding in _unlocked_installs("pip install -e . && ls")]
    ['RUN pip install -e .']
    """
    found = []
    for command in re.split(r"&&|;|\|\|", run):
        words = command.split()
        if "pip" not in words or "install" not in words:
            continue
        from_lock = "--require-hashes" in words and "-r" in words
        if not from_lock and "--no-deps" not in words:
            found.append(
                f"RUN {' '.join(words)}: resolves its own versions; install from the lock file "
                "(--require-hashes -r requirements/lock.txt) and the project with --no-deps"
            )
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            op, _, args = stripped.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def _assignments(args: str) -> list[tuple[str, str]]:
    if "=" not in args:
        name, _, value = args.partition(" ")
        return [(name, value.strip())]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", args)]


def _pinned(image: str) -> bool:
    """`name@sha256:...`, or a tag with a full version (`3.11.11-slim-bookworm`).

    >>> [_pinned(i) for i in ("python:3.11.11-slim", "python:3.11", "python", "x@sha256:ab")]
    [True, False, False, True]
    """
    if "@sha256:" in image:
        return True
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return bool(re.match(r"^v?\d+\.\d+\.\d+", tag))
