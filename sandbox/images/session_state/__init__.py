"""The reference session-state service: `python -m sandbox.images.session_state [--fault NAME]`.

REST under `/api/v1/sessions`, `/health/live`, `/health/ready`, `/metrics` on 8080;
WebSocket `/ws` on 8443 (and on 8080); both bound to `$POD_IP` (default 127.0.0.1).
PostgreSQL (`DB_URL` + `SECRET_DB_PASSWORD`) is the source of truth; Redis
(`REDIS_URL`, cluster or plain) is a read-through cache and the pub/sub fan-out
between replicas. Seeded faults (`--fault` or `SESSION_STATE_FAULT`): `faults.py`.
Tunables, all optional: `config.TIMING_ENV`, `DB_POOL_SIZE`, `LOG_LEVEL`.

Modules, one job each:

- `config`     settings from env and argv (a bad one: one line on stderr, exit 2)
- `faults`     the seeded-fault table and the decisions taken from it (pure)
- `model`      sessions, events, merge patch, ETag / If-Match, seq ordering (pure)
- `errors`     the error hierarchy and its mapping onto HTTP statuses
- `db`         asyncpg pool, migrations under an advisory lock, one transaction per write
- `writes`     committed writes, or the `drops-writes` write-behind buffer
- `cache`      the Redis read-through cache (never needed for a write)
- `redisconn`  a Redis client, cluster or plain, resolved lazily; a small breaker
- `pubsub`     publishes committed events; listens and feeds the local hub
- `hub`        per-subscription ordered delivery: replay, gap fill, dedupe, resync
- `service`    reads through the cache, writes through the write path
- `rest`, `websocket`, `health`, `metrics`, `middleware`  the HTTP surface
- `state`      the `Runtime` the handlers share
- `logs`       logging with every secret value redacted
- `app`        wiring, signals and the shutdown sequence

The image registry imports `faults` only, which imports nothing heavy.
"""
