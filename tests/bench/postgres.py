"""The benchmark's PostgreSQL: a private server with production settings, and its queries.

The settings are those the Ansible role gives the production server
(``cqrs_postgresql_settings`` in its defaults, memory sized as the role sizes it), with
durability forced on whatever the role says: fsync, synchronous_commit, full_page_writes.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml  # type: ignore[import-untyped]

from cqrs_demo.localdb import LocalPostgres
from tests.bench.procs import children

REPO = Path(__file__).resolve().parents[2]
_READ_MODEL_ROWS = b"""
SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM user_order_summaries),
       (SELECT count(*) FROM user_order_summary_open_orders),
       count(*) FILTER (WHERE event_type = 'OrderCreated'),
       count(DISTINCT payload->>'user_id') FILTER (WHERE event_type = 'OrderCreated'),
       count(*) FILTER (WHERE event_type = 'OrderCreated')
         - count(*) FILTER (WHERE event_type = 'OrderCancelled')
FROM events
"""
ROLE_DEFAULTS = REPO / "ansible/roles/cqrs_postgresql/defaults/main.yml"
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
PROFILING = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
AUDITOR = "cqrs_bench"  # the benchmark's own queries run as this role
QUIET_SECONDS = 1.2  # an idle backend reports its statistics within about a second


def memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def production_settings() -> dict[str, str]:
    """The role's postgresql.conf settings (if the role is here), then durability on."""
    settings: dict[str, str] = {}
    if ROLE_DEFAULTS.exists():
        defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
        for name, value in defaults.get("cqrs_postgresql_settings", {}).items():
            settings[name] = str(value)
        memory = memory_mib()
        settings["shared_buffers"] = f"{min(memory // 4, 8192)}MB"
        settings["effective_cache_size"] = f"{memory * 3 // 4}MB"
        settings["maintenance_work_mem"] = str(
            defaults.get("cqrs_postgresql_maintenance_work_mem", "256MB")
        )
    settings.update(DURABLE)
    return settings


def quoted(settings: dict[str, str]) -> dict[str, str]:
    return {name: "'" + value.replace("'", "''") + "'" for name, value in settings.items()}


class Server:
    """A started private server with production settings."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings
        self.local = LocalPostgres(durable=True, settings=quoted(settings))
        self.local.start()

    def stop(self) -> None:
        self.local.stop()

    def postmaster(self) -> int:
        pid_file = self.local.datadir / "postmaster.pid"
        return int(pid_file.read_text().splitlines()[0])

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, WAL writer, ...)."""
        postmaster = self.postmaster()
        return [postmaster, *children(postmaster)]

    def create_database(self, name: str) -> "Database":
        self.local.create_database(name)
        if not self.local.psql(name, f"SELECT 1 FROM pg_roles WHERE rolname = '{AUDITOR}'"):
            self.local.psql(name, f"CREATE ROLE {AUDITOR} SUPERUSER LOGIN")
        return Database(self.local, name)


class Database:
    """One database of the server (not yet migrated), with a connection for the audits."""

    def __init__(self, local: LocalPostgres, name: str, *, peer: bool = False) -> None:
        self.local = local
        self.name = name
        # Where the audit looks for the events of the system that writes here: a peer's own
        # table once it has made one (it may share the database with ours), else events.
        self.tables = (*EVENT_TABLES[1:], EVENT_TABLES[0]) if peer else EVENT_TABLES[:1]
        self.url = local.url(name)
        self.dsn = f"host=127.0.0.1 port={local.port} user=postgres dbname={name} sslmode=disable"
        # A role of its own, so that pg_stat_statements tells its statements apart.
        self.conn = psycopg.connect(self.url, user=AUDITOR, autocommit=True)
        self.pgbench_rows = 0  # rows written by the ceiling measurement, not by a run
        self.preloaded_rows = 0  # rows inserted between runs (--cancel's streams)
        self.statements = False  # pg_stat_statements loaded: time the statements of a run
        self.projected = False  # a projector keeps read models of it: wait for it after a run
        self.rows_projected = False  # ... and writes their rows (not the floor passing over)

    def close(self) -> None:
        self.conn.close()

    def scalar(self, sql: str, *params: object) -> int:
        row = self.conn.execute(sql.encode(), params).fetchone()
        assert row is not None
        return int(row[0])

    def for_peer(self) -> "Database":
        """The same database, audited as a peer writes it (``tables``), once the peer has
        started: rows already in a peer's own table (Emmett writes one as it starts) count as
        pre-loaded."""
        view = Database(self.local, self.name, peer=True)
        view.preloaded_rows = sum(
            view.scalar(f"SELECT count(*) FROM {table.name}")
            for table in view.existing_tables()
            if table is not EVENT_TABLES[0]
        )
        return view

    def existing_tables(self) -> list["EventTable"]:
        return [
            table
            for table in EVENT_TABLES
            if self.scalar("SELECT count(*) FROM pg_class WHERE oid = to_regclass(%s)", table.name)
        ]

    def event_table(self) -> "EventTable":
        """Where the system writing this database keeps its events: the first of
        ``tables`` that exists (``events`` while none does yet)."""
        existing = self.existing_tables()
        return next((table for table in self.tables if table in existing), EVENT_TABLES[0])

    def high_water_id(self) -> int:
        table = self.event_table()
        return self.scalar(f"SELECT coalesce(max({table.row_id}), 0) FROM {table.name}")

    def rows_after(self, event_id: int) -> list[tuple[str, str, int]]:
        """(payload user_id, stream, version) of every event with an id above ``event_id``."""
        table = self.event_table()
        cursor = self.conn.execute(
            f"SELECT {table.user_id}, {table.stream}, {table.version} FROM {table.name}"
            f" WHERE {table.row_id} > %s".encode(),
            [event_id],
        )
        return [(str(user), str(stream), int(version)) for user, stream, version in cursor]

    def event_count(self) -> int:
        """The rows of every table of events in the database (ours and the peers')."""
        return sum(
            self.scalar(f"SELECT count(*) FROM {table.name}") for table in self.existing_tables()
        )

    def wait_quiet(self, *, timeout: float = 15.0) -> None:
        """Wait until no other session of this database runs a statement, then a little more
        (so backends have reported their statistics)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = self.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            )
            if not active:
                break
            time.sleep(0.1)
        time.sleep(QUIET_SECONDS)

    def reset_statements(self) -> None:
        if self.statements:
            self.conn.execute(b"CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.conn.execute(b"SELECT pg_stat_statements_reset()")

    def statement_milliseconds(self) -> float | None:
        """Execution time of the system's statements since ``reset_statements`` (not the
        benchmark's own); commit waits are not in it unless the client sends COMMIT."""
        if not self.statements:
            return None
        row = self.conn.execute(
            b"SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
            b"WHERE toplevel AND userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
        assert row is not None
        return float(row[0])

    def projection_lag(self) -> int:
        """Events the slowest projection has not applied yet (0 with no checkpoint)."""
        return self.scalar(
            "SELECT coalesce(max((SELECT count(*) FROM events e"
            " WHERE (e.transaction_id, e.id) > (c.transaction_id, c.event_number))), 0)"
            " FROM projection_checkpoints c WHERE c.projection NOT LIKE '%%:rebuild'"
        )

    def read_model_rows(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """The rows of the read models (orders, user summaries, open orders), and what the
        events say they must be once projected: OrderCreated events, their users, and
        OrderCreated less OrderCancelled."""
        row = self.conn.execute(_READ_MODEL_ROWS).fetchone()
        assert row is not None
        found, expected = tuple(int(value) for value in row[:3]), tuple(int(v) for v in row[3:])
        return (found[0], found[1], found[2]), (expected[0], expected[1], expected[2])

    def wal(self) -> tuple[int, int, int]:
        """(WAL bytes, full-page images, WAL syncs) written since the server started."""
        row = self.conn.execute("SELECT wal_bytes, wal_fpi, wal_sync FROM pg_stat_wal").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def sizes(self) -> "TableSize":
        row = self.conn.execute(
            "SELECT count(*), pg_relation_size('events'), pg_indexes_size('events') FROM events"
        ).fetchone()
        assert row is not None
        return TableSize(rows=int(row[0]), heap_bytes=int(row[1]), index_bytes=int(row[2]))


@dataclass(frozen=True, slots=True)
class EventTable:
    """A system's table of events, as the audit reads it: each column an SQL expression."""

    name: str
    row_id: str  # grows with every row written
    user_id: str  # the user id of the command's body
    stream: str
    version: str  # the event's version in its stream


EVENT_TABLES = (
    # Ours and the seed's peer.
    EventTable("events", "id", "payload->>'user_id'", "aggregate_id", "version"),
    # Emmett's (../shared/peers/emmett): the event's data as a JSON object.
    EventTable(
        "emt_messages",
        "global_position",
        "message_data->>'user_id'",
        "stream_id",
        "stream_position",
    ),
    # The Python eventsourcing library's (../shared/peers/pyeventsourcing): named after its
    # application (Orders), the aggregate's event as JSON bytes, one new aggregate per command.
    EventTable(
        "orders_events",
        "notification_id",
        "convert_from(state, 'UTF8')::jsonb->>'user_id'",
        "originator_id::text",
        "originator_version",
    ),
)


@dataclass(frozen=True, slots=True)
class TableSize:
    rows: int
    heap_bytes: int
    index_bytes: int

    def __str__(self) -> str:
        mib = 1 << 20
        return (
            f"{self.rows:,} rows, heap {self.heap_bytes / mib:,.0f} MiB, "
            f"indexes {self.index_bytes / mib:,.0f} MiB"
        )
