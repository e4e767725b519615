"""Settings from the environment and argv: parsed once, validated, frozen.

A missing or invalid setting is a `ConfigError` whose message is one line and never
holds a secret; `__main__` prints it and exits 2. Secrets are every non-empty
`SECRET_*` value plus a password embedded in a URL; `redact` removes them from text.

`AMQP_URLS` (optional) lists the RabbitMQ nodes, one amqp:// URL each; without it the
service writes no outbox rows and runs no relay (see `db` and `relay`). The password
is `SECRET_AMQP_PASSWORD` (as for the database) or the URLs' own, and is a secret;
with neither, the AMQP client sends its default ("guest"), which a broker refuses
unless it has such a user.

    >>> s = parse_settings({"DB_URL": "postgresql://app@127.0.0.1:5432/app",
    ...                     "REDIS_URL": "redis://127.0.0.1:6379",
    ...                     "SECRET_DB_PASSWORD": "pw-123"}, [])
    >>> (s.db.user, s.db.host, s.db.port, s.db.database, s.bind_host, s.http_port)
    ('app', '127.0.0.1', 5432, 'app', '127.0.0.1', 8080)
    >>> s.redact("auth with pw-123 failed")
    'auth with *** failed'
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sandbox.images.session_state.faults import FAULTS, Fault, fault_named

HTTP_PORT = 8080
WS_PORT = 8443
FAULT_ENV = "SESSION_STATE_FAULT"
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
REDACTED = "***"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line without secret values."""


@dataclass(frozen=True)
class DbTarget:
    user: str
    host: str
    port: int
    database: str
    password: str = field(default="", repr=False)

    def describe(self) -> str:
        """`postgresql://user@host:port/db`, never with the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class RedisTarget:
    url: str = field(repr=False)
    host: str
    port: int

    def describe(self) -> str:
        return f"redis://{self.host}:{self.port}"


@dataclass(frozen=True)
class AmqpTarget:
    """One RabbitMQ node; `url` carries the password, so only `describe()` is ever logged."""

    url: str = field(repr=False)
    host: str
    port: int
    user: str
    vhost: str

    def describe(self) -> str:
        """`amqp://user@host:port/vhost`, never with the password."""
        scheme = "amqps" if self.url.startswith("amqps:") else "amqp"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.vhost}"


@dataclass(frozen=True)
class Timings:
    """Durations in seconds (and `burn_ms`), each overridable by an env var of its name."""

    ws_heartbeat: float = 15.0
    shutdown_timeout: float = 20.0
    # Serving on after SIGTERM until the ingress has dropped the pod: longer than
    # ingress-nginx's sync interval (1 / --sync-rate-limit 0.3 = 3.3 s) plus a reload, so
    # no request reaches a closed listener or a closed keep-alive connection.
    drain_delay: float = 5.0
    hang_after: float = 20.0
    startup: float = 40.0
    crash_after: float = 2.0
    burn_ms: float = 50.0
    flush_interval: float = 3.0  # drops-writes only: the window of writes a SIGTERM loses
    poll_interval: float = 1.0
    resync_interval: float = 5.0
    cache_ttl: float = 60.0
    db_timeout: float = 2.0
    redis_timeout: float = 0.5
    # slow-shutdown only: how long requests are held after SIGTERM. Above the 30 s
    # terminationGracePeriodSeconds of deploy/base, so the kubelet's SIGKILL comes first.
    slow_shutdown: float = 45.0
    # Close each WebSocket with 1012 after about this many seconds so that its client
    # reconnects and sockets spread over new pods (faults.socket_max_age). 0: never, the
    # reference releases' behaviour (1.0.0, 1.0.1, 1.1.0); release 1.2.0's image sets it.
    ws_max_age: float = 0.0


TIMING_ENV = {
    "ws_heartbeat": "WS_HEARTBEAT_SECONDS",
    "shutdown_timeout": "SHUTDOWN_TIMEOUT_SECONDS",
    "drain_delay": "DRAIN_DELAY_SECONDS",
    "hang_after": "HANG_AFTER_SECONDS",
    "startup": "STARTUP_SECONDS",
    "crash_after": "CRASH_AFTER_SECONDS",
    "burn_ms": "BURN_MS",
    "flush_interval": "FLUSH_INTERVAL_SECONDS",
    "poll_interval": "POLL_INTERVAL_SECONDS",
    "resync_interval": "RESYNC_INTERVAL_SECONDS",
    "cache_ttl": "CACHE_TTL_SECONDS",
    "db_timeout": "DB_TIMEOUT_SECONDS",
    "redis_timeout": "REDIS_TIMEOUT_SECONDS",
    "slow_shutdown": "SLOW_SHUTDOWN_SECONDS",
    "ws_max_age": "WS_MAX_AGE_SECONDS",
}


@dataclass(frozen=True)
class Settings:
    db: DbTarget
    redis: RedisTarget
    log_level: int
    bind_host: str
    fault: Fault
    timings: Timings
    version: str
    secrets: frozenset[str] = field(repr=False)
    db_pool_size: int = 10
    http_port: int = HTTP_PORT
    ws_port: int = WS_PORT
    amqp: tuple[AmqpTarget, ...] = ()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def redact(text: str, secrets: frozenset[str]) -> str:
    """`text` with every secret value replaced by `***`, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def parse_settings(env: Mapping[str, str], argv: Sequence[str]) -> Settings:
    """All settings, or the first problem as a `ConfigError`."""
    fault_name = _parse_argv(argv) or env.get(FAULT_ENV, "")
    try:
        fault = fault_named(fault_name)
    except KeyError as error:
        raise ConfigError(f"--fault / {FAULT_ENV}: {error.args[0]}") from None
    secrets = {value for key, value in env.items() if key.startswith("SECRET_") and value}
    db = parse_db_url(_required(env, "DB_URL"), env.get("SECRET_DB_PASSWORD", ""))
    redis = parse_redis_url(_required(env, "REDIS_URL"), env.get("SECRET_REDIS_PASSWORD", ""))
    amqp = parse_amqp_urls(env.get("AMQP_URLS", ""), env.get("SECRET_AMQP_PASSWORD", ""))
    secrets |= {s for s in (db.password, _url_password(redis.url)) if s}
    amqp_passwords = {_url_password(node.url) for node in amqp} - {""}
    secrets |= amqp_passwords | {quote(s, safe="") for s in amqp_passwords}
    return Settings(
        db=db,
        redis=redis,
        log_level=parse_log_level(env.get("LOG_LEVEL", "info")),
        bind_host=parse_bind_host(env.get("POD_IP", "")),
        fault=fault,
        timings=parse_timings(env),
        version=env.get("SERVICE_VERSION", "dev"),
        secrets=frozenset(secrets),
        db_pool_size=parse_pool_size(env.get("DB_POOL_SIZE", "")),
        amqp=amqp,
    )


def parse_pool_size(text: str) -> int:
    """DB_POOL_SIZE: connections per replica, 1..100 (default 10)."""
    if not text.strip():
        return 10
    try:
        size = int(text)
    except ValueError:
        raise ConfigError(f"DB_POOL_SIZE: {text!r} is not an integer") from None
    if not 1 <= size <= 100:
        raise ConfigError(f"DB_POOL_SIZE: must be between 1 and 100, got {size}")
    return size


def _parse_argv(argv: Sequence[str]) -> str:
    parser = _ArgParser(prog="session_state", add_help=False)
    parser.add_argument("--fault", default="", help=f"one of {', '.join(FAULTS)}")
    return str(parser.parse_args(list(argv)).fault)


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"arguments: {message}")


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise ConfigError(f"{key} is required")
    return value


def _url_password(url: str) -> str:
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def parse_db_url(url: str, password: str) -> DbTarget:
    """`postgresql://user@host:port/db`; `password` (SECRET_DB_PASSWORD) wins over the URL's."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        raise ConfigError("DB_URL: not a URL of the form postgresql://user@host:port/db") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"DB_URL: scheme must be postgresql, got {parts.scheme or 'none'!r}")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not parts.username or not database or "/" in database:
        raise ConfigError("DB_URL: expected postgresql://user@host:port/db")
    if parts.query or parts.fragment:
        raise ConfigError("DB_URL: query parameters are not supported")
    return DbTarget(
        user=unquote(parts.username),
        host=parts.hostname,
        port=port,
        database=database,
        password=password or unquote(parts.password or ""),
    )


def parse_redis_url(url: str, password: str) -> RedisTarget:
    """`redis://host:port[/db]` (or rediss://); SECRET_REDIS_PASSWORD, when set, is added."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        raise ConfigError("REDIS_URL: not a URL of the form redis://host:port") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError("REDIS_URL: expected redis://host:port")
    if password and not parts.password:
        netloc = f":{password}@{parts.netloc.rsplit('@', 1)[-1]}"
        url = parts._replace(netloc=netloc).geturl()
    return RedisTarget(url=url, host=parts.hostname, port=port)


def parse_amqp_urls(text: str, password: str) -> tuple[AmqpTarget, ...]:
    """AMQP_URLS: comma-separated `amqp://user@host:port/vhost`, one per node ('' = none).

    `password` (SECRET_AMQP_PASSWORD), when set, wins over a URL's own. The messages
    name the node by its position, never by the text, which may hold a password.

        >>> [n.describe() for n in parse_amqp_urls("amqp://u@h1:5672/, amqp://u@h2/", "")]
        ['amqp://u@h1:5672/', 'amqp://u@h2:5672/']
    """
    if not text.strip():
        return ()
    nodes = [part.strip() for part in text.split(",")]
    return tuple(_parse_amqp_url(url, password, n) for n, url in enumerate(nodes, 1))


def _parse_amqp_url(url: str, password: str, position: int) -> AmqpTarget:
    where = f"AMQP_URLS: node {position}"
    if not url:
        raise ConfigError(f"{where} is empty")
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: not a URL of the form amqp://user@host:port/vhost") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigError(f"{where}: scheme must be amqp or amqps, got {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise ConfigError(f"{where}: expected amqp://user@host:port/vhost (no host)")
    if explicit_port == 0:
        raise ConfigError(f"{where}: port must be between 1 and 65535")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: query parameters are not supported")
    user = unquote(parts.username or "")
    if not user:
        raise ConfigError(f"{where}: a user is required (amqp://user@host:port/vhost)")
    port = explicit_port or (5671 if parts.scheme == "amqps" else 5672)
    vhost = parts.path[1:] if parts.path.startswith("/") else parts.path
    secret = password or unquote(parts.password or "")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = (
        f"{quote(user, safe='')}:{quote(secret, safe='')}@"
        if secret
        else f"{quote(user, safe='')}@"
    )
    full = urlunsplit((parts.scheme, f"{netloc}{host}:{port}", "/" + vhost, "", ""))
    return AmqpTarget(url=full, host=parts.hostname, port=port, user=user, vhost=unquote(vhost))


def parse_log_level(text: str) -> int:
    level = LOG_LEVELS.get(text.strip().lower())
    if level is None:
        raise ConfigError(f"LOG_LEVEL: {text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def parse_bind_host(text: str) -> str:
    """POD_IP, an IP address (default 127.0.0.1)."""
    if not text.strip():
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ConfigError(f"POD_IP: {text!r} is not an IP address") from None


def parse_timings(env: Mapping[str, str]) -> Timings:
    values: dict[str, float] = {}
    for name, key in TIMING_ENV.items():
        if key not in env or not env[key].strip():
            continue
        try:
            value = float(env[key])
        except ValueError:
            raise ConfigError(f"{key}: {env[key]!r} is not a number") from None
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"{key}: must be a finite number >= 0, got {env[key]!r}")
        values[name] = value
    timings = Timings(**values)
    for name in ("ws_heartbeat", "poll_interval", "resync_interval", "flush_interval"):
        if getattr(timings, name) <= 0:
            raise ConfigError(f"{TIMING_ENV[name]}: must be > 0")
    return timings
