"""Bad manifests get an answer naming the file and the field, never a bare traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.errors import ManifestError
from resilience.manifests import render
from tests.builders import copy_deploy_tree, replace_in_file
from tests.cli import run_resilience


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    return copy_deploy_tree(tmp_path)


def test_not_yaml_names_file_and_line(deploy: Path) -> None:
    (deploy / "base" / "pdb.yaml").write_text("spec: [unclosed\n  minAvailable: 2\n")
    with pytest.raises(ManifestError, match=r"pdb\.yaml: line \d+, column \d+: not valid YAML"):
        render(deploy / "base")


def test_not_an_object_names_file_and_field(deploy: Path) -> None:
    replace_in_file(deploy / "base" / "hpa.yaml", "kind: HorizontalPodAutoscaler\n", "")
    with pytest.raises(ManifestError, match=r"hpa\.yaml: document 1: missing field kind"):
        render(deploy / "base")


def test_a_list_is_not_an_object(deploy: Path) -> None:
    (deploy / "base" / "pdb.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ManifestError, match=r"pdb\.yaml: document 1: expected a Kubernetes object"):
        render(deploy / "base")


def test_schema_violation_names_file_object_and_field(deploy: Path) -> None:
    replace_in_file(deploy / "base" / "deployment.yaml", "containerPort: 8080", "containerPort: x")
    pattern = (
        r"deployment\.yaml: Deployment/session-state-service: "
        r"spec\.template\.spec\.containers\[0\]\.ports\[0\]\.containerPort: 'x' is not"
    )
    with pytest.raises(ManifestError, match=pattern):
        render(deploy / "base")


def test_unknown_field_is_rejected(deploy: Path) -> None:
    replace_in_file(
        deploy / "base" / "pdb.yaml", "minAvailable: 2", "minAvailable: 2\n  minAvaliable: 1"
    )
    with pytest.raises(
        ManifestError, match=r"pdb\.yaml: PodDisruptionBudget/session-state-service"
    ):
        render(deploy / "base")


def test_missing_resource_file(deploy: Path) -> None:
    (deploy / "base" / "ingress.yaml").unlink()
    with pytest.raises(ManifestError, match=r"ingress\.yaml: file not found"):
        render(deploy / "base")


def test_cli_answers_bad_manifest_in_one_line_with_exit_2(deploy: Path) -> None:
    (deploy / "base" / "service.yaml").write_text("kind: [\n")
    completed = run_resilience("check-manifests", str(deploy))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "service.yaml" in lines[0] and "not valid YAML" in lines[0]
    assert "Traceback" not in completed.stderr
