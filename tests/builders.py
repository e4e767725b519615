"""Tiny builders and helpers for the project's own tests."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def copy_deploy_tree(destination: Path) -> Path:
    """A private copy of deploy/ that a test may break."""
    target = destination / "deploy"
    shutil.copytree(REPO_ROOT / "deploy", target)
    return target


def replace_in_file(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path}: {old!r} not found; the test's fault no longer applies"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
