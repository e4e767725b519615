"""Where the project's own files are, for code that runs from anywhere.

A game day runs each experiment from its run directory, and the in-cluster
container from /app: files the experiments name (`deploy/base`,
`experiments/fis/...`) are found as given when they exist there, else beside
this package.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_file(given: str | Path) -> Path:
    """`given` as is when it exists (absolute, or relative to the working directory),
    else relative to the project."""
    path = Path(given)
    if path.is_absolute() or path.exists():
        return path
    return PROJECT_ROOT / path
