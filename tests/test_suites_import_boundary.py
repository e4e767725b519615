"""Nothing in suites/ imports `sandbox`: the suites reach a cluster only through its APIs,
so what passes on the sandbox runs unchanged against staging (architecture principle 1).

lint-imports enforces the same for the packages; this test also covers suites/
files import-linter does not see (conftest.py, modules outside the graph) and
imports hidden in functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.builders import REPO_ROOT

SUITES = sorted((REPO_ROOT / "suites").rglob("*.py"))


def sandbox_imports(source: str) -> list[str]:
    """`import sandbox...` / `from sandbox... import` anywhere in the module, with line numbers.

    >>> sandbox_imports("import os\\nfrom sandbox.kube import store\\n")
    ['line 2: from sandbox.kube import store']
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sandbox" or alias.name.startswith("sandbox."):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module == "sandbox" or node.module.startswith("sandbox."))
        ):
            names = ", ".join(alias.name for alias in node.names)
            found.append(f"line {node.lineno}: from {node.module} import {names}")
    return found


def test_there_are_suites_to_check() -> None:
    assert len(SUITES) >= 6, [p.name for p in SUITES]


@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_suite_module_does_not_import_sandbox(path: Path) -> None:
    found = sandbox_imports(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(REPO_ROOT)} imports the sandbox: {found}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("import sandbox", 1, id="import"),
        pytest.param("import sandbox.cluster as c", 1, id="import-submodule"),
        pytest.param("from sandbox import cluster", 1, id="from"),
        pytest.param("def f():\n    from sandbox.kube import store", 1, id="inside-function"),
        pytest.param("import sandboxed", 0, id="other-name"),
        pytest.param("from . import sandbox", 0, id="relative"),
        pytest.param("from resilience import sandbox_cli", 0, id="resilience-cli"),
    ],
)
def test_the_detector_finds_sandbox_imports(source: str, expected: int) -> None:
    assert len(sandbox_imports(source)) == expected
