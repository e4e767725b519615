"""Control: refuse a production context, a namespace off the allowlist, an unreachable API.

Runs before the experiment; a refusal interrupts it before any activity. With the
stock `chaos run`, a production context is allowed only when
`HARMONYFLOW_ALLOW_PRODUCTION` holds the context name typed back (what
`resilience chaos run --allow-production NAME` sets).

    controls:
      - name: interlocks
        provider: {type: python, module: resilience.chaos.controls.interlocks}
"""

from __future__ import annotations

import os
from typing import Any

from chaoslib.exceptions import InterruptExecution

from resilience.errors import ResilienceError
from resilience.safety.refusals import DEFAULT_NAMESPACE_ALLOWLIST, SafetySettings
from resilience.targets.cluster import check_reachable, load_target

CONFIRMATION_ENV = "HARMONYFLOW_ALLOW_PRODUCTION"
ALLOWLIST_ENV = "HARMONYFLOW_NAMESPACE_ALLOWLIST"


def safety_settings(env: dict[str, str] | None = None) -> SafetySettings:
    source = os.environ if env is None else env
    confirmation = source.get(CONFIRMATION_ENV) or None
    allowlist = (
        tuple(n for n in (source.get(ALLOWLIST_ENV) or "").split(",") if n.strip())
        or DEFAULT_NAMESPACE_ALLOWLIST
    )
    return SafetySettings(
        namespace_allowlist=allowlist,
        allow_production=confirmation is not None,
        confirmation=confirmation,
    )


def check_target(namespace: str | None, timeout: float = 5.0) -> str:
    """Raise ResilienceError when the current target may not be disrupted; return its name."""
    target = load_target(context=os.environ.get("KUBERNETES_CONTEXT") or None, namespace=namespace)
    target.check_safety(safety_settings())
    check_reachable(target, timeout=timeout)
    return f"{target.context} ({target.server})"


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    namespace = (configuration or {}).get("namespace")
    try:
        check_target(str(namespace) if namespace else None)
    except ResilienceError as refusal:
        raise InterruptExecution(f"interlock: {refusal}") from None
