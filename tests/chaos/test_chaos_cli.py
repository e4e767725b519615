"""`resilience chaos` answers a mistake in one line with exit code 2, before touching anything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.builders import REPO_ROOT
from tests.cli import run_resilience

POD_KILL = REPO_ROOT / "experiments" / "pod-kill.yaml"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig(path: Path, context: str, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": context, "cluster": {"server": server}}],
                "contexts": [
                    {
                        "name": context,
                        "context": {"cluster": context, "user": "u", "namespace": "harmonyflow"},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
            }
        )
    )
    return path


def chaos(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        **os.environ,
        "KUBECONFIG": str(
            kubeconfig(tmp_path / "kubeconfig", "dev", f"http://127.0.0.1:{closed_port()}")
        ),
        "HARMONYFLOW_INGRESS_URL": "http://127.0.0.1:9",
        "HARMONYFLOW_INGRESS_SOURCES": "127.0.0.1",
        "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl"),
        "HARMONYFLOW_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return run_resilience("chaos", *args, env={**base, **(env or {})})


def one_line_exit_2(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr
    assert not (Path(done.args[0]).parent / "reports").exists()


def test_an_invalid_experiment_is_named(tmp_path: Path) -> None:
    broken = yaml.safe_load(POD_KILL.read_text())
    del broken["method"][0]["provider"]["func"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    one_line_exit_2(chaos(tmp_path, "run", str(path)), "broken.yaml: invalid experiment")
    one_line_exit_2(chaos(tmp_path, "validate", str(path)), "invalid experiment")


def test_not_yaml_and_no_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_text("title: [unclosed\n")
    one_line_exit_2(chaos(tmp_path, "run", str(path)), "garbage.yaml")
    one_line_exit_2(chaos(tmp_path, "run", str(tmp_path / "none.yaml")), "no such experiment file")


def test_a_missing_variable_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HARMONYFLOW_INGRESS_URL"}
    done = run_resilience(
        "chaos", "run", str(POD_KILL), env={**env, "KUBECONFIG": str(tmp_path / "none")}
    )
    one_line_exit_2(
        done, "missing variable: base_url (environment variable HARMONYFLOW_INGRESS_URL)"
    )


def test_an_undeclared_var_is_refused_not_ignored(tmp_path: Path) -> None:
    done = chaos(tmp_path, "run", str(POD_KILL), "--var", "zoen=us-west-2a")
    one_line_exit_2(done, "--var zoen: not declared", "declared: ")


def test_an_unreachable_cluster(tmp_path: Path) -> None:
    one_line_exit_2(chaos(tmp_path, "run", str(POD_KILL)), "cannot reach the Kubernetes API")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        pytest.param([], "--allow-production", id="refused"),
        pytest.param(["--allow-production", "prod"], "prod-eks", id="wrong-name-typed-back"),
    ],
)
def test_a_production_context_is_refused(tmp_path: Path, extra: list[str], fragment: str) -> None:
    config = kubeconfig(tmp_path / "prod", "prod-eks", "https://127.0.0.1:1")
    done = chaos(tmp_path, "run", str(POD_KILL), *extra, env={"KUBECONFIG": str(config)})
    one_line_exit_2(done, "prod-eks", fragment)


def test_a_namespace_off_the_allowlist(tmp_path: Path) -> None:
    done = chaos(tmp_path, "run", str(POD_KILL), "--var", "namespace=kube-system")
    one_line_exit_2(done, "'kube-system' is not on the allowlist")


def test_chaos_discover_lists_probes_as_probes(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("chaos")),
            "--no-version-check",
            "--no-log-file",
            "discover",
            "--no-install",
            "--no-system-info",
            "--discovery-path",
            str(tmp_path / "discovery.json"),
            "harmonyflow-resilience",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    kinds = {
        a["name"]: a["type"]
        for a in json.loads((tmp_path / "discovery.json").read_text())["activities"]
    }
    assert kinds["drain_zone"] == kinds["stop_zone_instances"] == kinds["set_image"] == "action"
    assert (
        kinds["ready_endpoints"] == kinds["time_to_recovery"] == kinds["rollout_seconds"] == "probe"
    )
    assert kinds["inject_network_fault"] == kinds["remove_chaos"] == "action"
    assert kinds["chaos_mesh_condition_seconds"] == kinds["pods_leave_endpoints_seconds"] == "probe"
    activities = json.loads((tmp_path / "discovery.json").read_text())["activities"]
    assert all(a.get("doc") for a in activities), "every activity documents itself"


@pytest.mark.parametrize(
    "experiment", sorted(p.name for p in (REPO_ROOT / "experiments").glob("*.yaml"))
)
def test_every_experiment_passes_chaos_validate(tmp_path: Path, experiment: str) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("chaos")),
            "--no-version-check",
            "--no-log-file",
            "validate",
            str(REPO_ROOT / "experiments" / experiment),
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "HARMONYFLOW_INGRESS_URL": "http://127.0.0.1:9",
            "HARMONYFLOW_INGRESS_SOURCES": "127.0.0.1",
            "PROMETHEUS_URL": "http://127.0.0.1:9",
        },
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_is_one_experiment_per_fault_of_the_catalogue() -> None:
    names = {p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml")}
    assert names >= {
        "pod-kill",
        "az-drain",
        "az-power-loss",
        "rds-failover",
        "redis-failover",
        "rolling-update",
        "bad-release",
        "liveness-hang",
        "readiness-dependency",
        "hpa-surge",
        "dependency-latency",
        "dependency-partition",
        "ingress-packet-loss",
        "dns-failure",
    }
