"""deploy/gameday as the RBAC tests read it: its documents, and who runs which plan where."""

from __future__ import annotations

import re
from typing import Any

import yaml

from resilience.preflight.rbac import Subject
from tests.builders import REPO_ROOT

GAMEDAY = REPO_ROOT / "deploy" / "gameday"


def gameday_documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((GAMEDAY / name).read_text()) if d]


def scheduled_game_day() -> tuple[Subject, str, str]:
    """Who the CronJob runs as, which plan (settings.yaml) and in which namespace (the
    in-cluster kubeconfig's context, in-cluster.sh)."""
    [job] = gameday_documents("cronjob.yaml")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    account = Subject("ServiceAccount", pod["serviceAccountName"], job["metadata"]["namespace"])
    [settings] = gameday_documents("settings.yaml")
    script = (GAMEDAY / "in-cluster.sh").read_text()
    namespace = re.search(r"namespace: ([a-z0-9-]+)\}", script)
    assert namespace is not None, "in-cluster.sh: no namespace in its kubeconfig context"
    return account, settings["data"]["plan"], namespace.group(1)
