"""A canary: one extra pod of the live Deployment's template, with one change, behind the
same Service.

Probe behaviour is a property of one container: a hung process, a slow start.
Rolling a fault image through the whole Deployment would make every replica
hang at once (an outage, not a probe test) and take minutes. A canary is the
live pod template -- the probes, ports, env and grace period as deployed --
with another image and extra env, in a Deployment of one replica whose selector
adds one label. It carries the service's `app` label, so the Service routes to
it while it is Ready, and the watch of the service's pods sees it. It belongs
to no ReplicaSet of the real Deployment, whose selector includes the
pod-template-hash, so the rollout's counts and the real ReplicaSets are left
alone.

    >>> live = {"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
    ...     "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
    ...     "spec": {"containers": [{"name": "web", "image": "web:1", "env": []}]}}}}
    >>> env = {"HANG_AFTER_SECONDS": "5"}
    >>> body = canary_deployment(live, "web", "hang", "web:liveness-hang", env)
    >>> body["spec"]["selector"]["matchLabels"]
    {'app': 'web', 'harmonyflow.io/suite-canary': 'hang'}
    >>> body["spec"]["template"]["spec"]["containers"][0]["env"]
    [{'name': 'HANG_AFTER_SECONDS', 'value': '5'}]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from resilience.targets.live import CANARY_LABEL


def canary_name(deployment: str, purpose: str) -> str:
    return f"{deployment}-canary-{purpose}"[:63]


def canary_deployment(
    live: Mapping[str, Any],
    container: str,
    purpose: str,
    image: str,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A one-replica Deployment of the live template with `image` and `env` in `container`."""
    spec = live["spec"]
    template = copy.deepcopy(dict(spec["template"]))
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.pop("pod-template-hash", None)
    labels[CANARY_LABEL] = purpose
    template["metadata"] = {"labels": labels}
    containers = template["spec"]["containers"]
    target = next(c for c in containers if c["name"] == container)
    target["image"] = image
    extra = [{"name": k, "value": v} for k, v in (env or {}).items()]
    kept = [e for e in target.get("env") or [] if e.get("name") not in (env or {})]
    target["env"] = kept + extra
    selector = {**dict(spec["selector"].get("matchLabels") or {}), CANARY_LABEL: purpose}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(container, purpose),
            "labels": {CANARY_LABEL: purpose},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }
