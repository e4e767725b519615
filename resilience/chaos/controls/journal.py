"""Control: the run's journal, secrets scrubbed, written under `reports/`.

`chaos run` writes its journal where it was started; game days and the runner
want it beside the run's other artefacts. After the experiment (rollbacks
included), the journal is written to `$HARMONYFLOW_REPORTS_DIR` (default
`reports/`) as `journal-<experiment-file-stem or title>-<start>.json`, with every
value under a key that names a secret, token, password or key replaced.

    controls:
      - name: journal
        provider: {type: python, module: resilience.chaos.controls.journal}
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

REPORTS_ENV = "HARMONYFLOW_REPORTS_DIR"
_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|credential|api[_-]?key|access[_-]?key", re.I
)
REDACTED = "**redacted**"


def scrub(value: Any) -> Any:
    """A copy with every value under a secret-looking key redacted (secrets blocks too).

    >>> scrub({"a": 1, "aws_secret_access_key": "x", "nested": [{"token": "y"}]})
    {'a': 1, 'aws_secret_access_key': '**redacted**', 'nested': [{'token': '**redacted**'}]}
    """
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) or key == "secrets" else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


def journal_file(journal: dict[str, Any], reports: Path) -> Path:
    title = str(journal.get("experiment", {}).get("title") or "experiment")
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "experiment"
    start = re.sub(r"[^0-9T]", "", str(journal.get("start") or ""))[:15]
    return reports / f"journal-{slug}-{start}.json"


def after_experiment_control(context: dict[str, Any], state: dict[str, Any], **kwargs: Any) -> None:
    reports = Path(os.environ.get(REPORTS_ENV) or "reports")
    reports.mkdir(parents=True, exist_ok=True)
    path = journal_file(state, reports)
    path.write_text(json.dumps(scrub(state), indent=2, default=str), encoding="utf-8")
