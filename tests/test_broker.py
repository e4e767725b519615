"""The consumer-side verdict on session events, and the collector's bounded start."""

from __future__ import annotations

import doctest
import socket
import time

import pytest

from resilience import broker
from resilience.broker import (
    SHOWN,
    Delivery,
    EventCollector,
    delivery_from_body,
    event_verdict,
    parse_urls,
    urls_from_env,
)


def delivered(
    session: str, version: int, event_id: str = "", redelivered: bool = False
) -> Delivery:
    return Delivery(
        event_id or f"{session}-{version}", session, version, "updated", 0.0, redelivered
    )


@pytest.mark.parametrize(
    ("expected", "deliveries", "missing", "duplicates", "unexpected"),
    [
        pytest.param([], [], (), (), (), id="nothing"),
        pytest.param(
            [("a", 1), ("a", 2)], [delivered("a", 1), delivered("a", 2)], (), (), (), id="all"
        ),
        pytest.param(
            [("a", 1), ("a", 2), ("b", 1)],
            [delivered("a", 1)],
            (("a", 2), ("b", 1)),
            (),
            (),
            id="missing-sorted",
        ),
        pytest.param(
            [("a", 1)],
            [delivered("a", 1), delivered("a", 1, redelivered=True), delivered("a", 1)],
            (),
            (("a-1", 3),),
            (),
            id="duplicates-allowed-and-counted",
        ),
        pytest.param(
            [("a", 1)],
            [delivered("a", 1), delivered("z", 4)],
            (),
            (),
            (("z", 4),),
            id="unexpected-reported",
        ),
        pytest.param(
            [("a", 1), ("a", 1)], [delivered("a", 1)], (), (), (), id="expected-repeated-once"
        ),
        pytest.param(
            [("a", 1)],
            [delivered("a", 1, event_id="e1"), delivered("a", 1, event_id="e2")],
            (),
            (),
            (),
            id="two-events-for-one-write-are-not-duplicates-by-id",
        ),
    ],
)
def test_event_verdict(
    expected: list[tuple[str, int]],
    deliveries: list[Delivery],
    missing: tuple[tuple[str, int], ...],
    duplicates: tuple[tuple[str, int], ...],
    unexpected: tuple[tuple[str, int], ...],
) -> None:
    verdict = event_verdict(expected, deliveries)
    assert (verdict.missing, verdict.duplicates, verdict.unexpected) == (
        missing,
        duplicates,
        unexpected,
    )
    assert verdict.ok == (not missing)
    assert bool(verdict.failures()) == bool(missing)


def test_failures_name_the_missing_events_with_counts() -> None:
    expected = [(f"s{n:02}", 1) for n in range(SHOWN + 3)]
    verdict = event_verdict(expected, [delivered("s00", 1)])
    [line] = verdict.failures()
    assert line.startswith(f"{SHOWN + 2} of {SHOWN + 3} acknowledged writes have no event: ")
    assert "s01 v1" in line and f"s{SHOWN:02} v1" in line
    assert line.endswith(" and 2 more")
    assert "s00 v1" not in line
    assert f", {SHOWN + 2} missing," in verdict.summary()


@pytest.mark.parametrize(
    ("text", "result"),
    [
        pytest.param("amqp://u@h:5672/", ("amqp://u@h:5672/",), id="one"),
        pytest.param(" amqp://u@a/ , amqps://u@b/ ,", ("amqp://u@a/", "amqps://u@b/"), id="two"),
        pytest.param("", "no AMQP URL given", id="empty"),
        pytest.param("http://u:pw@h/", "URL 1: scheme must be amqp or amqps", id="scheme"),
        pytest.param("amqp://u@a/,amqp:///x", "URL 2: expected amqp://", id="no-host"),
        pytest.param("amqp://u:pw@h:99999/", "URL 1: not a URL", id="bad-port"),
    ],
)
def test_parse_urls(text: str, result: tuple[str, ...] | str) -> None:
    if isinstance(result, tuple):
        assert parse_urls(text) == result
        return
    with pytest.raises(ValueError, match=result) as error:
        parse_urls(text)
    assert "pw" not in str(error.value) and "\n" not in str(error.value)


def test_urls_from_env_reads_the_sandbox_variable() -> None:
    assert urls_from_env({"HARMONYFLOW_AMQP_URLS": "amqp://u@h/"}) == ("amqp://u@h/",)


@pytest.mark.parametrize(
    ("body", "message_id", "result"),
    [
        pytest.param(
            b'{"event_id":"e","session_id":"s","version":2,"kind":"deleted"}',
            None,
            ("e", "s", 2, "deleted"),
            id="id-from-body",
        ),
        pytest.param(
            b'{"session_id":"s","version":1,"kind":"created"}',
            "m",
            ("m", "s", 1, "created"),
            id="message-id-wins",
        ),
        pytest.param(b'{"session_id":"s","version":true}', "m", None, id="bool-version"),
        pytest.param(b'{"session_id":"s","version":1}', None, None, id="no-id"),
        pytest.param(b"[1]", "m", None, id="not-object"),
        pytest.param(b"\xff", "m", None, id="not-json"),
    ],
)
def test_delivery_from_body(
    body: bytes, message_id: str | None, result: tuple[str, str, int, str] | None
) -> None:
    delivery = delivery_from_body(body, message_id, True, 5.0)
    if result is None:
        assert delivery is None
    else:
        assert delivery is not None
        assert (delivery.message_id, delivery.session_id, delivery.version, delivery.kind) == result
        assert delivery.redelivered and delivery.delivered_at == 5.0


def test_collector_start_is_bounded_when_no_node_answers() -> None:
    with socket.socket() as probe:  # a port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collector = EventCollector([f"amqp://u:secret-pw@127.0.0.1:{port}/"], connect_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="no AMQP node accepted") as error:
        collector.start(timeout=1.5)
    assert time.monotonic() - began < 10
    assert "secret-pw" not in str(error.value)
    assert collector._thread is None  # stopped again


def test_docstring_examples() -> None:
    assert doctest.testmod(broker).failed == 0
