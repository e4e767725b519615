"""The suite's Chaos Toolkit extension: actions, probes and controls for HarmonyFlow.

Experiments call these where chaostoolkit-kubernetes and chaostoolkit-aws fall
short: a zone drain that retries PDB refusals and always uncordons, zone power
loss that writes down its undo, pod kills one zone at a time with the recovery
measured, and probes a steady-state hypothesis can hold a tolerance against.
`chaos discover harmonyflow-resilience --no-install` lists them; each
activity's docstring is its manual.
"""

from __future__ import annotations

from typing import Any

ACTION_MODULES = (
    "resilience.chaos.brokers",
    "resilience.chaos.chaosmesh",
    "resilience.chaos.database",
    "resilience.chaos.deployments",
    "resilience.chaos.fis",
    "resilience.chaos.nodes",
    "resilience.chaos.pace",
    "resilience.chaos.pods",
    "resilience.chaos.zones",
)
PROBE_MODULES = (
    "resilience.chaos.broker_probes",
    "resilience.chaos.chaosmesh_probes",
    "resilience.chaos.probes",
    "resilience.chaos.prometheus",
    "resilience.chaos.readiness",
)


def discover(discover_system: bool = True) -> Any:
    """What `chaos discover` reports: our actions as actions and our probes as probes."""
    from chaoslib.discovery.discover import (  # noqa: PLC0415 - only for `chaos discover`
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery = initialize_discovery_result("harmonyflow-resilience", _version(), "resilience")
    for module in ACTION_MODULES:
        discovery["activities"].extend(discover_actions(module))
    for module in PROBE_MODULES:
        discovery["activities"].extend(discover_probes(module))
    return discovery


def _version() -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version("harmonyflow-resilience")
