"""Where test code lives: helpers in builders and harness modules, never in test modules.

A test module that imports another one runs the other's module-level code, drags its
fixtures into the importer's namespace, and hides a shared helper where nobody looks
for it; a conftest imported as a module is a second copy of it. So shared helpers go
to `builders.py` (or a named harness such as tests/live.py), and benchmarks, which run
outside pytest, import nothing from tests/ at all. Read statically, with `ast`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import REPO_ROOT

TEST_ROOTS = ("tests", "suites")


def imported_modules(source: str, package: str) -> Iterator[str]:
    """Every module `source` imports, dotted, with relative imports resolved against
    `package`; `from a import b` yields `a.b` too (b may be a module).

    >>> sorted(imported_modules("import a.b\\nfrom c import d\\nfrom . import e", "p.q"))
    ['a.b', 'c', 'c.d', 'p.q', 'p.q.e']
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def is_test_module(dotted: str) -> bool:
    """A module pytest collects tests from (`test_*.py`), or a conftest.

    >>> [is_test_module(m) for m in ("tests.a.test_b", "tests.conftest", "tests.builders")]
    [True, True, False]
    """
    name = dotted.rsplit(".", 1)[-1]
    return name.startswith("test_") or name == "conftest"


def imports_of_test_modules(source: str, package: str) -> list[str]:
    """The test modules (and conftests) of this project that `source` imports."""
    return sorted(
        {
            module
            for module in imported_modules(source, package)
            if module.split(".")[0] in TEST_ROOTS and is_test_module(module)
        }
    )


def imports_of_tests(source: str, package: str) -> list[str]:
    """The modules under tests/ that `source` imports (`from a import b`: `a`, once)."""
    found = {m for m in imported_modules(source, package) if m.split(".")[0] == "tests"}
    return sorted(m for m in found if not any(m.startswith(f"{other}.") for other in found))


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).parent.parts)


def python_files(*roots: str) -> list[Path]:
    return sorted(path for root in roots for path in (REPO_ROOT / root).rglob("*.py"))


@pytest.mark.parametrize(
    ("source", "package", "found"),
    [
        pytest.param(
            "from tests.sandbox.kube.test_scheduler import make_pod",
            "tests.sandbox.kube",
            ["tests.sandbox.kube.test_scheduler"],
            id="from-a-test-module",
        ),
        pytest.param(
            "import tests.chaos.test_experiments_live as live",
            "tests.gameday",
            ["tests.chaos.test_experiments_live"],
            id="import-a-test-module",
        ),
        pytest.param(
            "from tests.chaos import test_experiments_live",
            "tests.gameday",
            ["tests.chaos.test_experiments_live"],
            id="a-test-module-from-its-package",
        ),
        pytest.param(
            "from .test_nginx_config import NGINX",
            "tests.sandbox.infra",
            ["tests.sandbox.infra.test_nginx_config"],
            id="relative",
        ),
        pytest.param(
            "from tests.load.conftest import LOADTESTS",
            "tests.load",
            ["tests.load.conftest"],
            id="a-conftest",
        ),
        pytest.param(
            "def f():\n    from tests.sandbox.infra.test_infra_rds import make_instance\n",
            "tests.sandbox.infra",
            ["tests.sandbox.infra.test_infra_rds"],
            id="inside-a-function",
        ),
        pytest.param(
            "from tests.sandbox.kube.builders import make_pod\nfrom tests.live import started\n"
            "import pytest\nfrom resilience.chaos import test_helpers\n",
            "tests.sandbox.kube",
            [],
            id="builders-harnesses-and-other-packages-are-fine",
        ),
    ],
)
def test_imports_of_test_modules_are_found(source: str, package: str, found: list[str]) -> None:
    assert imports_of_test_modules(source, package) == found


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): imported
        for path in python_files(*TEST_ROOTS)
        if (imported := imports_of_test_modules(path.read_text(), package_of(path)))
    }
    assert offenders == {}, "move what they share to a builders.py or a harness module"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        pytest.param(
            "from tests.sandbox.harness import LoopThread", ["tests.sandbox.harness"], id="from"
        ),
        pytest.param("import tests.builders", ["tests.builders"], id="import"),
        pytest.param("from tests import builders", ["tests"], id="package"),
        pytest.param(
            "from sandbox.kube.embedding import LoopThread\nimport testsuite\n", [], id="fine"
        ),
    ],
)
def test_imports_of_tests_are_found(source: str, found: list[str]) -> None:
    assert imports_of_tests(source, "bench") == found


def test_bench_imports_nothing_from_tests() -> None:
    """Benchmarks run outside pytest; what they share with the tests lives in `sandbox` or
    `resilience` (e.g. `sandbox.kube.embedding`), or in bench/ itself."""
    offenders = {
        str(path.relative_to(REPO_ROOT)): imported
        for path in python_files("bench")
        if (imported := imports_of_tests(path.read_text(), package_of(path)))
    }
    assert offenders == {}


def test_every_test_directory_is_a_package() -> None:
    """Tests import helpers as `tests.sandbox.kube.builders`: each folder needs its
    `__init__.py`, or two `builders.py` would clash in pytest's rootdir-relative import."""
    folders = {path.parent for path in python_files(*TEST_ROOTS)}
    loose = [f for f in folders if not (f / "__init__.py").exists()]
    assert sorted(str(f.relative_to(REPO_ROOT)) for f in loose) == []


def test_tests_of_the_sandbox_sit_in_the_room_of_what_they_test() -> None:
    """tests/sandbox/ holds only subpackages (kube/, kubelet/, images/, cni/, infra/,
    session_state/, live/) and the harnesses they share, no test module of its own."""
    loose = sorted(p.name for p in (REPO_ROOT / "tests" / "sandbox").glob("test_*.py"))
    assert loose == []
