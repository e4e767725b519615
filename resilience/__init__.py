"""HarmonyFlow Resilience: chaos and resilience tests for the session-state service."""

__version__ = "0.1.0"
