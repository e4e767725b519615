"""How to reach a cluster (and AWS): a Target read from a kubeconfig, checked and bounded.

A Target holds where, never credentials: the kubeconfig path, the context, the
cluster and its server URL, the namespace and the AWS endpoint/region from the
environment. Tokens and keys stay in the kubeconfig (or its exec plugin) and in
the environment; `api_client()` reads them when a client is built, so the
Target's repr can be logged and written into reports.

Errors are the user's to fix and say how: a missing kubeconfig, an unknown
context (with the known ones listed), an API server that does not answer
`/version` within a few seconds ("cannot reach the Kubernetes API at URL: why").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from resilience.errors import InvalidInputError, ResilienceError
from resilience.safety.refusals import SafetySettings, enforce, target_refusals

DEFAULT_NAMESPACE = "harmonyflow"
DEFAULT_KUBECONFIG = Path("~/.kube/config")


class TargetUnreachableError(ResilienceError):
    """The API server did not answer; the message names the URL and the reason."""


@dataclass(frozen=True)
class AwsSettings:
    """Where boto3 goes: the sandbox sets AWS_ENDPOINT_URL, staging leaves it unset."""

    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        source = os.environ if env is None else env
        return cls(
            endpoint_url=source.get("AWS_ENDPOINT_URL") or None,
            region=source.get("AWS_REGION") or source.get("AWS_DEFAULT_REGION") or None,
        )


@dataclass(frozen=True)
class Target:
    kubeconfig: Path
    context: str
    cluster: str
    server: str
    namespace: str
    aws: AwsSettings = field(default_factory=AwsSettings)

    def api_client(self, retries: int = 0) -> client.ApiClient:
        """A Kubernetes client for this context; credentials are read here, not stored."""
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig),
                context=self.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except ConfigException as error:
            raise InvalidInputError(f"kubeconfig {self.kubeconfig}: {error}") from error
        configuration.retries = retries
        return client.ApiClient(configuration)

    def check_safety(self, settings: SafetySettings | None = None) -> None:
        """Raise InterlockRefused unless the production and namespace interlocks pass."""
        chosen = settings or SafetySettings()
        enforce(target_refusals(self.context, self.server, self.namespace, chosen, self.cluster))


def default_kubeconfig(env: Mapping[str, str] | None = None) -> Path:
    source = os.environ if env is None else env
    first = (source.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else DEFAULT_KUBECONFIG.expanduser()


def load_target(
    kubeconfig: Path | str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """Read a Target from a kubeconfig (default $KUBECONFIG, then ~/.kube/config).

    No network: use `check_reachable` for that.
    """
    path = Path(kubeconfig).expanduser() if kubeconfig else default_kubeconfig(env)
    document = _read_kubeconfig(path)
    contexts = {str(c.get("name")): c.get("context") or {} for c in document.get("contexts") or []}
    chosen = context or document.get("current-context")
    if not chosen:
        raise InvalidInputError(
            f"kubeconfig {path}: no context given and no current-context; "
            f"known contexts: {', '.join(sorted(contexts)) or 'none'}"
        )
    if chosen not in contexts:
        raise InvalidInputError(
            f"kubeconfig {path}: unknown context {chosen!r}; "
            f"known contexts: {', '.join(sorted(contexts)) or 'none'}"
        )
    entry = contexts[chosen]
    cluster_name = str(entry.get("cluster") or "")
    clusters = {str(c.get("name")): c.get("cluster") or {} for c in document.get("clusters") or []}
    if cluster_name not in clusters:
        raise InvalidInputError(
            f"kubeconfig {path}: context {chosen!r} names cluster {cluster_name!r}, "
            f"which is not in the file"
        )
    server = str(clusters[cluster_name].get("server") or "")
    if not server:
        raise InvalidInputError(f"kubeconfig {path}: cluster {cluster_name!r} has no server")
    return Target(
        kubeconfig=path,
        context=chosen,
        cluster=cluster_name,
        server=server,
        namespace=namespace or str(entry.get("namespace") or DEFAULT_NAMESPACE),
        aws=AwsSettings.from_env(env),
    )


def check_reachable(
    target: Target, timeout: float = 3.0, api_client: client.ApiClient | None = None
) -> str:
    """GET /version within `timeout` seconds (no retries); returns the server's gitVersion."""
    api = api_client or target.api_client(retries=0)
    try:
        version: Any = client.VersionApi(api).get_code(_request_timeout=(timeout, timeout))
    except ApiException as error:
        raise TargetUnreachableError(
            f"the Kubernetes API at {target.server} refused /version: {error.status} {error.reason}"
        ) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise TargetUnreachableError(
            f"cannot reach the Kubernetes API at {target.server}: {_reason(error)}"
        ) from error
    finally:
        if api_client is None:
            api.close()  # type: ignore[no-untyped-call]
    return str(getattr(version, "git_version", "") or "")


def _read_kubeconfig(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise InvalidInputError(
            f"kubeconfig {path}: no such file (set KUBECONFIG or pass --kubeconfig)"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInputError(f"kubeconfig {path}: cannot read it: {error}") from error
    if not isinstance(document, Mapping):
        raise InvalidInputError(f"kubeconfig {path}: not a kubeconfig (expected a mapping)")
    return document


def _reason(error: BaseException) -> str:
    """The innermost cause urllib3 wraps (MaxRetryError -> NewConnectionError -> refused)."""
    reason: object = getattr(error, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    text = str(reason or error)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text
