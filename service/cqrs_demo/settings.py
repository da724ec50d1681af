"""Configuration from the environment: read once at start-up, validated, frozen.

A bad or missing value raises ``ConfigError`` whose message is one line naming the variable.
"""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cqrs_demo.store.conninfo import build_conninfo

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TOKEN_LINE = re.compile(r"(?P<name>[A-Za-z0-9_.@-]{1,64})\s+sha256:(?P<digest>[0-9a-f]{64})")


class ConfigError(Exception):
    """A configuration variable is missing or has a bad value."""


@dataclass(frozen=True, slots=True)
class Settings:
    conninfo: str = field(repr=False)  # libpq connection string, password included
    # Where the queries read (a standby, say); None: from ``conninfo``'s pool, as commands.
    read_conninfo: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    pool_min_size: int = 5
    pool_max_size: int = 25
    pool_timeout: float = 3.0
    group_commit_max_batch: int = 64
    group_commit_writers: int = 2
    group_commit_overlap_ms: int = 2
    body_limit: int = 65_536
    body_timeout: float = 10.0
    max_connections: int = 4096  # per worker
    head_limit: int = 16_384
    head_timeout: float = 10.0
    idempotency_retention_hours: int = 24
    tokens: tuple[tuple[str, bytes], ...] = ()  # (name, SHA-256 of the token); () = open
    # The tokens that may write the reserved verification streams (cqrs-verify:...); () = none.
    verify_tokens: tuple[tuple[str, bytes], ...] = ()
    log_level: str = "info"
    # Events per transaction of a projection. 3000: a busy projector's batch (150 ms of
    # commands at several thousand a second) fits in one; at 1000 it took two, the second
    # small (docs/performance.md, "Batches of 3,000").
    projector_batch_size: int = 3000
    projector_poll_seconds: float = 1.0  # the longest a projector waits without a wake-up
    metrics_host: str = "127.0.0.1"  # where both metrics endpoints listen
    metrics_port: int | None = None  # the API's Prometheus endpoint; None: no metrics
    projector_metrics_port: int | None = None  # the projector's; None: none


def database_conninfo(environ: Mapping[str, str]) -> str:
    """``CQRS_DATABASE_URL``, with the password from ``CQRS_DATABASE_PASSWORD_FILE`` if set.
    It must reach the primary: one naming several servers must ask for
    ``target_session_attrs=read-write`` (``store.conninfo.build_conninfo``)."""
    url = environ.get("CQRS_DATABASE_URL", "").strip()
    if not url:
        raise ConfigError("CQRS_DATABASE_URL is not set (e.g. postgresql://user@host/cqrs_events)")
    return _conninfo(environ, "CQRS_DATABASE_URL", url, writes=True)


def read_database_conninfo(environ: Mapping[str, str]) -> str | None:
    """``CQRS_READ_DATABASE_URL`` (``None`` when unset: the queries read from the pool of
    ``CQRS_DATABASE_URL``), with the password from ``CQRS_DATABASE_PASSWORD_FILE`` if set.
    It may name standbys, e.g. ``postgresql://app@db1,db2,db3/cqrs_events?
    target_session_attrs=prefer-standby``."""
    url = environ.get("CQRS_READ_DATABASE_URL", "").strip()
    return _conninfo(environ, "CQRS_READ_DATABASE_URL", url, writes=False) if url else None


def _conninfo(environ: Mapping[str, str], name: str, url: str, *, writes: bool) -> str:
    password_file = environ.get("CQRS_DATABASE_PASSWORD_FILE", "").strip()
    password = _read_password(password_file) if password_file else None
    try:
        return build_conninfo(url, password=password, writes=writes)
    except ValueError as error:
        raise ConfigError(f"{name} is invalid: {error}") from None


def _read_password(path: str) -> str:
    try:
        password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise ConfigError(f"CQRS_DATABASE_PASSWORD_FILE cannot be read: {path}: {reason}") from None
    if not password:
        raise ConfigError(f"CQRS_DATABASE_PASSWORD_FILE is empty: {path}")
    return password


def default_workers() -> int:
    """Half the CPUs, at least one: the appliance runs PostgreSQL on the same host, and it
    needs the other half. Two workers on two cores, each competing with PostgreSQL for a
    core, answered 25 to 48% fewer commands at 8 and 32 connections than one worker
    (``docs/performance.md``). On a host of its own, set ``CQRS_WORKERS`` to the CPU count."""
    return max(1, (os.cpu_count() or 1) // 2)


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read every ``CQRS_*`` variable; raise ``ConfigError`` naming the first bad one."""
    default = Settings(conninfo="")
    pool_min = _get(environ, "CQRS_POOL_MIN_SIZE", _integer(0, 1000), default.pool_min_size)
    pool_max = _get(environ, "CQRS_POOL_MAX_SIZE", _integer(1, 1000), default.pool_max_size)
    if pool_max < pool_min:
        raise ConfigError(
            f"CQRS_POOL_MAX_SIZE ({pool_max}) must not be less than CQRS_POOL_MIN_SIZE ({pool_min})"
        )
    port = _get(environ, "CQRS_PORT", _integer(1, 65535), default.port)
    metrics_port, projector_metrics_port = _metrics_ports(environ, port)
    return Settings(
        conninfo=database_conninfo(environ),
        read_conninfo=read_database_conninfo(environ),
        host=_get(environ, "CQRS_HOST", _host, default.host),
        port=port,
        workers=_get(environ, "CQRS_WORKERS", _integer(1, 64), default_workers()),
        pool_min_size=pool_min,
        pool_max_size=pool_max,
        pool_timeout=_get(environ, "CQRS_POOL_TIMEOUT", _seconds, default.pool_timeout),
        group_commit_max_batch=_get(
            environ,
            "CQRS_GROUP_COMMIT_MAX_BATCH",
            _integer(1, 1000),
            default.group_commit_max_batch,
        ),
        group_commit_writers=_get(
            environ, "CQRS_GROUP_COMMIT_WRITERS", _integer(1, 1000), default.group_commit_writers
        ),
        group_commit_overlap_ms=_get(
            environ,
            "CQRS_GROUP_COMMIT_OVERLAP_MS",
            _integer(0, 60_000),
            default.group_commit_overlap_ms,
        ),
        body_limit=_get(environ, "CQRS_BODY_LIMIT", _integer(1024, 16 << 20), default.body_limit),
        body_timeout=_get(environ, "CQRS_BODY_TIMEOUT", _seconds, default.body_timeout),
        max_connections=_get(
            environ, "CQRS_MAX_CONNECTIONS", _integer(16, 1_000_000), default.max_connections
        ),
        head_limit=_get(environ, "CQRS_HEAD_LIMIT", _integer(4096, 1 << 20), default.head_limit),
        head_timeout=_get(environ, "CQRS_HEAD_TIMEOUT", _seconds, default.head_timeout),
        idempotency_retention_hours=_get(
            environ,
            "CQRS_IDEMPOTENCY_RETENTION_HOURS",
            _integer(1, 24 * 366),
            default.idempotency_retention_hours,
        ),
        tokens=_get(environ, "CQRS_TOKENS_FILE", _token_hashes, ()),
        verify_tokens=_get(environ, "CQRS_VERIFY_TOKEN_FILE", _token_hashes, ()),
        log_level=_get(environ, "CQRS_LOG_LEVEL", _log_level, default.log_level),
        projector_batch_size=_get(
            environ,
            "CQRS_PROJECTOR_BATCH_SIZE",
            _integer(1, 100_000),
            default.projector_batch_size,
        ),
        projector_poll_seconds=_get(
            environ, "CQRS_PROJECTOR_POLL_SECONDS", _poll_seconds, default.projector_poll_seconds
        ),
        metrics_host=_get(environ, "CQRS_METRICS_HOST", _host, default.metrics_host),
        metrics_port=metrics_port,
        projector_metrics_port=projector_metrics_port,
    )


def _metrics_ports(environ: Mapping[str, str], port: int) -> tuple[int | None, int | None]:
    """``CQRS_METRICS_PORT`` and ``CQRS_PROJECTOR_METRICS_PORT`` (unset: that endpoint is
    off). Each must differ from ``CQRS_PORT`` and from the other: the API, its metrics and
    the projector's run on one host, and the second to bind a port would fail to start."""
    ports: list[int | None] = []
    for name in ("CQRS_METRICS_PORT", "CQRS_PROJECTOR_METRICS_PORT"):
        value = _get(environ, name, _integer(1, 65535), None)
        if value == port:
            raise ConfigError(f"{name}={value} is invalid: CQRS_PORT is {port} already")
        if value is not None and value in ports:
            raise ConfigError(f"{name}={value} is invalid: CQRS_METRICS_PORT is {value} already")
        ports.append(value)
    return ports[0], ports[1]


def _get(environ: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as error:
        raise ConfigError(f"{name}={raw!r} is invalid: {error}") from None


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.lstrip("-").isdigit():
            raise ValueError("must be a whole number")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0.1 <= value <= 600:
        raise ValueError("must be between 0.1 and 600 seconds")
    return value


def _host(raw: str) -> str:
    if any(character.isspace() for character in raw):
        raise ValueError("must be a host name or IP address")
    return raw


def _token_hashes(path: str) -> tuple[tuple[str, bytes], ...]:
    """Lines ``NAME sha256:HEX`` (see ``cqrs-demo token``); blank lines and ``#`` comments."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise ValueError(f"cannot be read: {reason}") from None
    tokens = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _TOKEN_LINE.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"line {number} is not 'NAME sha256:<64 hex digits>'")
        tokens.append((match["name"], bytes.fromhex(match["digest"])))
    if not tokens:
        raise ValueError("holds no token")
    return tuple(tokens)


def _log_level(raw: str) -> str:
    if raw.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return raw.lower()


def _poll_seconds(raw: str) -> float:
    """At most a second: a lost notification must not hold a projection back for longer."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0.01 <= value <= 1:
        raise ValueError("must be between 0.01 and 1 second")
    return value
