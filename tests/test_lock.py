"""The environment the tests run in is the lock file, and the lock file still satisfies
pyproject.toml: a release manager gets the same answer on the same commit, and an edit of
pyproject.toml without `make lock` is caught here rather than on the next fresh machine."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.builders import REPO_ROOT

LOCK = REPO_ROOT / "requirements" / "lock.txt"
PROJECT = "harmonyflow-resilience"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def locked_pins(text: str) -> dict[str, str]:
    """Name -> exact version of every `name==version` line of a compiled lock file."""
    pins = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def drift(locked: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """How an installed environment differs from the lock: missing, other or extra packages."""
    found = []
    for name in sorted(locked.keys() | installed.keys()):
        want, have = locked.get(name), installed.get(name)
        if have is None:
            found.append(f"{name}=={want} is locked but not installed")
        elif want is None:
            found.append(f"{name}=={have} is installed but not locked")
        elif want != have:
            found.append(f"{name} is {have}, the lock says {want}")
    return found


def unmet(requirements: Iterable[str], locked: Mapping[str, str]) -> list[str]:
    """Requirements of pyproject.toml that the lock's pins do not satisfy (Python 3.11)."""
    found = []
    for text in requirements:
        requirement = Requirement(text)
        environment = {"python_version": "3.11", "extra": ""}
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            found.append(f"{text}: not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{text}: the lock has {version}")
    return found


@pytest.mark.parametrize(
    ("locked", "installed", "expected"),
    [
        ({"a": "1"}, {"a": "1"}, []),
        ({"a": "1"}, {"a": "2"}, ["a is 2, the lock says 1"]),
        ({"a": "1", "b": "3"}, {"a": "1"}, ["b==3 is locked but not installed"]),
        ({"a": "1"}, {"a": "1", "c": "0.1"}, ["c==0.1 is installed but not locked"]),
    ],
)
def test_drift_names_each_difference(
    locked: dict[str, str], installed: dict[str, str], expected: list[str]
) -> None:
    assert drift(locked, installed) == expected


@pytest.mark.parametrize(
    ("requirement", "locked", "expected"),
    [
        ("redis>=8.0", {"redis": "8.2.0"}, []),
        ("redis>=9", {"redis": "8.2.0"}, ["redis>=9: the lock has 8.2.0"]),
        ("Py_YAML>=6", {"py-yaml": "6.0.3"}, []),
        ("rich>=13", {}, ["rich>=13: not in the lock"]),
        ("pywin32; sys_platform == 'win32'", {}, []),
    ],
)
def test_unmet_requirements_are_named(
    requirement: str, locked: dict[str, str], expected: list[str]
) -> None:
    assert unmet([requirement], locked) == expected


def test_a_lock_line_with_hashes_is_one_pin() -> None:
    text = "# header\nboto3==1.44.18 \\\n    --hash=sha256:ab \\\n    # via x\nuv==0.13.9\n"
    assert locked_pins(text) == {"boto3": "1.44.18", "uv": "0.13.9"}


def test_the_running_environment_is_the_lock() -> None:
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if canonicalize_name(dist.metadata["Name"]) != PROJECT
    }
    assert drift(locked_pins(LOCK.read_text()), installed) == []


def test_the_lock_satisfies_pyproject() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    build = [
        line.strip()
        for line in (REPO_ROOT / "requirements" / "build.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert unmet(wanted + build, locked_pins(LOCK.read_text())) == []
