"""The optional parts of the seed the sandbox can run: names, and the checks on them.

RabbitMQ (three Erlang nodes) and monitoring (Prometheus and Alertmanager) are
real servers too, but most tests never touch them; starting them with every
sandbox would cost each of those tests their boot time and memory. They start
with `resilience sandbox up --with rabbitmq --with monitoring`, and a test asks
for them with `@pytest.mark.sandbox_with("rabbitmq")`.

    >>> sorted(parse_extras(["monitoring", "rabbitmq", "rabbitmq"]))
    ['monitoring', 'rabbitmq']
    >>> parse_extras(["kafka"])
    Traceback (most recent call last):
    ...
    ValueError: unknown sandbox extra 'kafka' (known: monitoring, rabbitmq)
"""

from __future__ import annotations

from collections.abc import Iterable

RABBITMQ = "rabbitmq"
MONITORING = "monitoring"
EXTRAS = (MONITORING, RABBITMQ)


def parse_extras(names: Iterable[str]) -> frozenset[str]:
    """The extras named, refused with the known ones listed when one is unknown."""
    chosen = frozenset(names)
    unknown = sorted(chosen - set(EXTRAS))
    if unknown:
        raise ValueError(f"unknown sandbox extra {unknown[0]!r} (known: {', '.join(EXTRAS)})")
    return chosen
