"""HarmonyFlow Resilience: chaos and resilience tests for the session-state service."""

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> object:
    """`chaos discover harmonyflow-resilience`: the Chaos Toolkit extension's activities."""
    from resilience.chaos import discover as discover_chaos  # noqa: PLC0415 - chaoslib is heavy

    return discover_chaos(discover_system)
