"""The seed's monitoring namespace in the sandbox: a real Prometheus and Alertmanager.

Prometheus finds the service's pods from the EndpointSlices, as it does on EKS with
`kubernetes_sd_configs` (`role: endpointslice`). Debian's Prometheus is built
without that discovery, so `sandbox/infra/kubesd.py` does its work — reading the
API server the kubeconfig names and writing a `file_sd` file with the same
`__meta_kubernetes_*` labels — and the scrape job's `relabel_configs` are those of
staging. It scrapes every endpoint of the service's `http` port at `/metrics`
(labels namespace, pod, node, zone), and the control plane's
own `/metrics` (kube-state-metrics-compatible series plus the RDS pair's replica
lag) as a static job. Its rules are `deploy/monitoring/rules/*.yaml` unchanged: the
same files staging loads through the ConfigMap of `deploy/monitoring/`.

What differs from staging are flags: scrape and evaluation every 5 s instead of
the usual 30 s/1 m, because a sandbox fault lasts seconds and an alert's `for:`
must be reachable within a game day's step; and a 2 h retention instead of the
seed's 30 days. Alertmanager gets a minimal configuration of our own — one
receiver that sends nowhere, never the seed's Slack/PagerDuty/e-mail routes —
and no cluster gossip (`--cluster.listen-address=`), web on loopback only.

    >>> monitoring = Monitoring(state_dir, api_url, kubeconfig)  # doctest: +SKIP
    >>> await monitoring.start(); monitoring.prometheus_url      # doctest: +SKIP
    'http://127.0.3.40:9090'
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import yaml

from sandbox.infra.kubesd import KubeSdBridge
from sandbox.infra.postgres import DB_NAME, DB_USER, RdsInstance, read_db_password
from sandbox.infra.supervisor import Endpoint, InfraError, ServerProcess, ensure_free, wait_until
from sandbox.state import pids_dir

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "deploy" / "monitoring" / "rules"
PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
DEFAULT_PROMETHEUS = Endpoint("127.0.3.40", 9090)
DEFAULT_ALERTMANAGER = Endpoint("127.0.3.41", 9093)
# Sandbox flags (see the module docstring); staging keeps Prometheus's usual values.
SCRAPE_INTERVAL = "5s"
EVALUATION_INTERVAL = "5s"
RETENTION = "2h"
SERVICE_LABEL = "session-state-service"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 2.0
PROMETHEUS_JOB = "session-state-service"
CONTROL_PLANE_JOB = "sandbox-control-plane"
LAG_TIMEOUT_SECONDS = 1.5
# postgres_exporter's pg_replication query: 0 while the standby has replayed all it
# received (an idle primary is not "lagging"), else the age of the last replayed commit.
REPLICATION_LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN NULL
  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))
END
"""


def prometheus_config(
    api_url: str,
    sd_file: Path,
    rules_dir: Path,
    alertmanager: Endpoint,
    service: str = SERVICE_LABEL,
    credentials_file: Path | None = None,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """prometheus.yml: the pods through kubernetes_sd, the control plane, the rules, Alertmanager.

    >>> config = prometheus_config("http://127.0.0.1:6443", Path("/sd.json"), Path("/r"),
    ...                            Endpoint("127.0.3.41", 9093))
    >>> config["scrape_configs"][1]["static_configs"]
    [{'targets': ['127.0.0.1:6443']}]
    >>> config["rule_files"]
    ['/r/*.yaml']
    """
    api = urlsplit(api_url)
    pods = {
        "job_name": PROMETHEUS_JOB,
        "metrics_path": "/metrics",
        # Staging: kubernetes_sd_configs: [{role: endpointslice}] (see kubesd.py).
        "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "30s"}],
        "relabel_configs": [
            # The Service's pods (not the headless twin: one target per pod), port `http`.
            {
                "source_labels": ["__meta_kubernetes_service_label_app"],
                "regex": service,
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_service_name"],
                "regex": ".*-headless",
                "action": "drop",
            },
            {
                "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
                "regex": "http",
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            {
                "source_labels": ["__meta_kubernetes_endpointslice_endpoint_zone"],
                "target_label": "zone",
            },
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        ],
    }
    control_plane = {
        "job_name": CONTROL_PLANE_JOB,
        "metrics_path": "/metrics",
        "scheme": api.scheme or "http",
        "static_configs": [{"targets": [api.netloc]}],
        # kube-state-metrics' series carry their object's namespace; keep it.
        "honor_labels": True,
    }
    if credentials_file is not None:
        # The API server's /metrics needs `get` on that URL (system:monitoring or more):
        # Prometheus presents the kubeconfig user's bearer token, read from a 0600 file.
        control_plane["authorization"] = {
            "type": "Bearer",
            "credentials_file": str(credentials_file),
        }
    if ca_file is not None:
        control_plane["tls_config"] = {"ca_file": str(ca_file)}
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "4s",
            "evaluation_interval": EVALUATION_INTERVAL,
            "external_labels": {"cluster": "harmonyflow-sandbox"},
        },
        "rule_files": [str(rules_dir / "*.yaml")],
        "alerting": {
            "alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": [str(alertmanager)]}]}
            ]
        },
        "scrape_configs": [pods, control_plane],
    }


def alertmanager_config() -> dict[str, Any]:
    """A receiver that sends nowhere: the sandbox shows alerts, it pages no one.

    >>> alertmanager_config()["route"]["receiver"]
    'sandbox-null'
    """
    return {
        "route": {
            "receiver": "sandbox-null",
            "group_by": ["alertname", "namespace"],
            "group_wait": "1s",
            "group_interval": "5s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "sandbox-null"}],
    }


class Monitoring:
    """Prometheus and Alertmanager processes with generated configuration under the state dir."""

    def __init__(
        self,
        state_dir: Path,
        api_url: str,
        kubeconfig: Path,
        prometheus: Endpoint = DEFAULT_PROMETHEUS,
        alertmanager: Endpoint = DEFAULT_ALERTMANAGER,
        rules_dir: Path = RULES_DIR,
        timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.state_dir = state_dir
        self.api_url = api_url
        self.kubeconfig = kubeconfig
        self.prometheus = prometheus
        self.alertmanager = alertmanager
        self.rules_dir = rules_dir
        self.timeout = timeout
        self.root = state_dir / "monitoring"
        self.start_seconds: float | None = None
        self._prometheus: ServerProcess | None = None
        self._alertmanager: ServerProcess | None = None
        self.sd_file = self.root / "sd" / "kubernetes-endpointslice.json"
        self._bridge: KubeSdBridge | None = None

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.alertmanager}"

    def process_ids(self) -> list[int]:
        return [s.pid for s in (self._prometheus, self._alertmanager) if s is not None]

    def write_configs(self) -> tuple[Path, Path]:
        """prometheus.yml and alertmanager.yml under `<state>/monitoring/`."""
        self.root.mkdir(parents=True, exist_ok=True)
        prometheus_yml = self.root / "prometheus.yml"
        token_file, ca_file = self.root / "apiserver-token", self.root / "apiserver-ca.crt"
        _write_secret(token_file, kubeconfig_token(self.kubeconfig))
        ca_file.write_bytes(kubeconfig_ca(self.kubeconfig))
        prometheus_yml.write_text(
            yaml.safe_dump(
                prometheus_config(
                    self.api_url,
                    self.sd_file,
                    self.rules_dir,
                    self.alertmanager,
                    credentials_file=token_file,
                    ca_file=ca_file,
                ),
                sort_keys=False,
            )
        )
        alertmanager_yml = self.root / "alertmanager.yml"
        alertmanager_yml.write_text(yaml.safe_dump(alertmanager_config(), sort_keys=False))
        return prometheus_yml, alertmanager_yml

    async def start(self) -> None:
        """Alertmanager, then Prometheus; both ready (`/-/ready`) or both stopped and an error."""
        for binary in (PROMETHEUS, ALERTMANAGER):
            if not binary.exists():
                raise InfraError(f"monitoring: {binary} is not installed (make setup installs it)")
        ensure_free([self.prometheus, self.alertmanager], "monitoring")
        began = time.monotonic()
        prometheus_yml, alertmanager_yml = self.write_configs()
        pids = pids_dir(self.state_dir)
        try:
            self._bridge = KubeSdBridge(
                kubeconfig_server(self.kubeconfig),
                self.sd_file,
                token=kubeconfig_token(self.kubeconfig),
                ca_pem=kubeconfig_ca(self.kubeconfig),
            )
            await self._bridge.start()
            self._alertmanager = await ServerProcess.start(
                "alertmanager",
                [
                    str(ALERTMANAGER),
                    f"--config.file={alertmanager_yml}",
                    f"--storage.path={self.root / 'alertmanager-data'}",
                    f"--web.listen-address={self.alertmanager}",
                    "--cluster.listen-address=",
                    f"--data.retention={RETENTION}",
                ],
                log_path=self.root / "alertmanager.log",
                pids_dir=pids,
            )
            self._prometheus = await ServerProcess.start(
                "prometheus",
                [
                    str(PROMETHEUS),
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={self.root / 'prometheus-data'}",
                    f"--storage.tsdb.retention.time={RETENTION}",
                    f"--web.listen-address={self.prometheus}",
                    f"--web.external-url={self.prometheus_url}",
                ],
                log_path=self.root / "prometheus.log",
                pids_dir=pids,
            )
            for server, url in (
                (self._alertmanager, self.alertmanager_url),
                (self._prometheus, self.prometheus_url),
            ):
                await wait_until(
                    lambda url=url: _ready(url),  # type: ignore[misc]
                    what=f"{server.name} on {url}",
                    timeout=self.timeout,
                    server=server,
                    interval=0.2,
                )
        except BaseException:
            await self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        log.info("monitoring ready in %.1f s", self.start_seconds)

    async def stop(self) -> None:
        if self._bridge is not None:
            await self._bridge.stop()
            self._bridge = None
        servers = [s for s in (self._prometheus, self._alertmanager) if s is not None]
        self._prometheus = self._alertmanager = None
        await asyncio.gather(
            *(s.stop(timeout=STOP_TIMEOUT_SECONDS) for s in servers), return_exceptions=True
        )


async def replication_lag(
    rds: RdsInstance, timeout: float = LAG_TIMEOUT_SECONDS
) -> dict[str, float]:
    """{standby "host:port": seconds behind}; {} when the standby cannot be asked in time.

    Asked on the standby over TCP as the application's user, as postgres_exporter
    running beside it would; a detached or recovering standby leaves the series out.
    """
    server = rds.standby.endpoint
    try:
        connection = await asyncpg.connect(
            host=server.host,
            port=server.port,
            user=DB_USER,
            password=read_db_password(),
            database=DB_NAME,
            timeout=timeout,
            command_timeout=timeout,
        )
        try:
            lag = await connection.fetchval(REPLICATION_LAG_SQL)
        finally:
            await connection.close(timeout=timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, InfraError) as error:
        log.debug("replication lag of %s unknown: %r", server, error)
        return {}
    return {} if lag is None else {str(server): float(lag)}


def kubeconfig_server(path: Path) -> str:
    """The API server URL of the kubeconfig's current context (what client-go would use)."""
    return str(_current(path, "cluster", "server")).rstrip("/")


def kubeconfig_token(path: Path) -> str:
    """The bearer token of the kubeconfig's current user ('' for none)."""
    return str(_current(path, "user", "token", required=False) or "")


def kubeconfig_ca(path: Path) -> bytes:
    """The cluster's CA certificates (PEM) of the current context (empty for none)."""
    data = _current(path, "cluster", "certificate-authority-data", required=False)
    return base64.b64decode(data) if data else b""


def _current(path: Path, section: str, key: str, required: bool = True) -> Any:
    """One field of the current context's cluster or user entry."""
    try:
        document = yaml.safe_load(path.read_text())
        contexts = {c["name"]: c["context"] for c in document.get("contexts") or []}
        entries = {c["name"]: c[section] for c in document.get(f"{section}s") or []}
        entry = entries[contexts[document["current-context"]][section]] or {}
        return entry[key] if required else entry.get(key)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        # the error names the missing key only: never a value of the file
        raise InfraError(
            f"monitoring: cannot read the {section}'s {key} from {path}: {type(error).__name__}"
        ) from None


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


async def _ready(url: str) -> bool:
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url}/-/ready") as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
