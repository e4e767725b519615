"""No secret or token in any report file: known values replaced, token shapes masked.

Reports get attached to tickets and mailed around, so every text file of a run
directory is scrubbed once the day is over, whatever wrote it (Locust, chaoslib,
the experiments' output). Two nets:

- **known values**: every value the run could have seen -- environment variables
  whose names say secret/token/password/key/webhook, and the credentials of the
  kubeconfig (token, password, client key, auth-provider and exec-plugin values) --
  replaced wherever they occur;
- **shapes**: bearer tokens, JWTs, AWS access key ids, `password=...` style pairs,
  and URLs with a password in them, masked even when the value was never known here.

    >>> scrub_text("Authorization: Bearer abc.def.ghi and token=s3cr3t-value", ["s3cr3t-value"])
    'Authorization: Bearer **redacted** and token=**redacted**'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REDACTED = "**redacted**"
MIN_SECRET_LENGTH = 6  # shorter values ("true", "1") would shred the text, not protect it
_SECRET_NAME = re.compile(
    r"secret|token|passw|credential|api[_-]?key|access[_-]?key|private[_-]?key|webhook|"
    r"client[_-]key|auth",
    re.I,
)
_NAME = r"[A-Za-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key)[A-Za-z0-9_-]*"
_VALUE = r"(?!\*\*redacted)[^\s\"',;&}<]{4,}"
_SHAPES = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    # name=value (env dumps, query strings, log lines): safe inside JSON strings too
    (re.compile(rf"(?i)\b({_NAME}\s*=\s*)" + _VALUE), r"\1" + REDACTED),
    # "name": "value" (JSON, YAML with quotes): the value stays a string
    (re.compile(rf"(?i)\b({_NAME}[\"']?\s*:\s*[\"'])" + _VALUE), r"\1" + REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"]+:)[^/\s@\"]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"), REDACTED),
)
# name: value without quotes (YAML, log lines), for files that are not JSON
_PLAIN_COLON = (re.compile(rf"(?i)\b({_NAME}\s*:\s+)" + _VALUE), r"\1" + REDACTED)
JSON_SUFFIXES = {".json", ".jsonl"}
TEXT_SUFFIXES = {
    ".json",
    ".jsonl",
    ".csv",
    ".html",
    ".log",
    ".xml",
    ".yaml",
    ".yml",
    ".txt",
    ".svg",
    "",
}


def secret_values(env: Mapping[str, str], kubeconfig: Mapping[str, Any] | None = None) -> list[str]:
    """Every value that must never be written: secret-named env vars and kubeconfig credentials.

    >>> secret_values({"HF_API_TOKEN": "tok-123456", "HOME": "/root"},
    ...               {"users": [{"user": {"token": "kube-abcdef"}}]})
    ['kube-abcdef', 'tok-123456']
    """
    found = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    for user in (kubeconfig or {}).get("users") or []:
        if isinstance(user, Mapping):
            found.update(_leaves(user.get("user") or {}, secret_only=False))
    return sorted(v for v in found if len(v) >= MIN_SECRET_LENGTH)


def _leaves(value: Any, secret_only: bool) -> Iterable[str]:
    """String leaves of a kubeconfig user entry (all of them: the entry is credentials)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("command", "apiVersion", "interactiveMode", "provideClusterInfo"):
                continue
            if key in ("args", "name"):
                continue
            yield from _leaves(item, secret_only)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, secret_only)
    elif isinstance(value, str):
        yield value


def scrub_text(text: str, secrets: Sequence[str], json_safe: bool = False) -> str:
    """`text` with every known secret replaced and every token shape masked; with
    `json_safe`, only replacements that keep a JSON document valid."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    shapes = _SHAPES if json_safe else (*_SHAPES, _PLAIN_COLON)
    for pattern, replacement in shapes:
        text = pattern.sub(replacement, text)
    return text


def kubeconfig_document(path: str | Path | None) -> Mapping[str, Any] | None:
    if not path:
        return None
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return document if isinstance(document, Mapping) else None


def run_secrets(
    env: Mapping[str, str] | None = None, kubeconfig: str | Path | None = None
) -> list[str]:
    """The secrets of this process's environment and of its kubeconfig(s)."""
    source = os.environ if env is None else env
    paths = [kubeconfig] if kubeconfig else (source.get("KUBECONFIG") or "").split(os.pathsep)
    found: set[str] = set(secret_values(source))
    for path in paths:
        found.update(secret_values({}, kubeconfig_document(path)))
    return sorted(found)


def scrub_tree(directory: Path, secrets: Sequence[str]) -> list[Path]:
    """Scrub every text file under `directory` in place; returns the files changed."""
    changed = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in TEXT_SUFFIXES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        clean = scrub_text(text, secrets, json_safe=path.suffix.lower() in JSON_SUFFIXES)
        if clean != text:
            path.write_text(clean, encoding="utf-8")
            changed.append(path)
    return changed
