"""Prometheus metrics of one process, in a registry of its own (tests build several).

Routes are labelled by their pattern (`/api/v1/sessions/{id}`), never by the raw path,
so that the label set stays bounded.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "session_state_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "session_state_http_request_duration_seconds",
            "HTTP request latency by route and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.websockets = Gauge(
            "session_state_websocket_connections", "open WebSocket connections", registry=r
        )
        self.aged_out = Counter(
            "session_state_websocket_aged_out",
            "WebSockets closed with 1012 at their max connection age (WS_MAX_AGE_SECONDS)",
            registry=r,
        )
        self.subscriptions = Gauge(
            "session_state_websocket_subscriptions", "active session subscriptions", registry=r
        )
        self.events_published = Counter(
            "session_state_events_published", "events published to Redis pub/sub", registry=r
        )
        self.events_pushed = Counter(
            "session_state_events_pushed", "events sent to WebSocket subscribers", registry=r
        )
        self.events_received = Counter(
            "session_state_events_received", "events received from Redis pub/sub", registry=r
        )
        self.gap_fills = Counter(
            "session_state_event_gap_fills", "reads of the event log to fill a gap", registry=r
        )
        self.db_errors = Counter(
            "session_state_db_errors", "PostgreSQL errors by operation", ["operation"], registry=r
        )
        self.redis_errors = Counter(
            "session_state_redis_errors", "Redis errors by operation", ["operation"], registry=r
        )
        self.cache = Counter(
            "session_state_cache_lookups", "cache lookups by result", ["result"], registry=r
        )
        self.pubsub_connected = Gauge(
            "session_state_pubsub_connected", "1 while subscribed to Redis pub/sub", registry=r
        )
        self.write_buffer = Gauge(
            "session_state_unflushed_writes",
            "acknowledged writes not yet committed (drops-writes fault only)",
            registry=r,
        )
        # The transactional outbox and its relay to RabbitMQ (relay.py); absent AMQP_URLS
        # they stay 0. `pending` is refreshed by the relay loop, not on every write.
        self.outbox_pending = Gauge(
            "session_state_outbox_pending", "outbox rows not yet published to AMQP", registry=r
        )
        self.outbox_oldest_pending = Gauge(
            "session_state_outbox_oldest_pending_seconds",
            "age of the oldest outbox row not yet published (0 when none is)",
            registry=r,
        )
        self.outbox_published = Counter(
            "session_state_outbox_published", "outbox events published (confirmed)", registry=r
        )
        self.broker_connected = Gauge(
            "session_state_broker_connected", "1 while connected to a RabbitMQ node", registry=r
        )
        self.broker_errors = Counter(
            "session_state_broker_errors", "RabbitMQ connection and publish errors", registry=r
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
