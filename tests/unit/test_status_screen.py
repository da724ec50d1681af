"""The lines of ``cqrs-demo status`` from what was found: backups, the database, the
projections, and the screen with and without colour. No I/O."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from cqrs_demo.ports import Checkpoint, Position, ProjectionStatus
from cqrs_demo.status import (
    Check,
    LastBackup,
    backups_check,
    database_line,
    projection_check,
    render,
    use_colour,
)
from cqrs_demo.store.sql import latest_schema_version
from cqrs_demo.store.status import DatabaseStatus

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def test_no_backup_configured_needs_attention_until_the_backup_work_fills_it_in() -> None:
    assert backups_check(None, now=NOW) == Check(
        "backups", "backups", False, "none configured (docs/operations.md, Backup and restore)"
    )
    assert not backups_check(None, now=NOW, configured=True).ok
    fresh = LastBackup(NOW - timedelta(hours=3), "full backup 20261130-020000F")
    assert backups_check(fresh, now=NOW, configured=True) == Check(
        "backups",
        "backups",
        True,
        "last full backup 20261130-020000F finished 2026-11-30 02:00 UTC, 3.0 h ago",
    )
    stale = LastBackup(NOW - timedelta(days=3), "full backup")
    assert not backups_check(stale, now=NOW, configured=True).ok
    assert backups_check(stale, now=NOW, configured=True).detail.endswith("3.0 days ago")


def test_a_standby_or_a_schema_behind_needs_attention() -> None:
    version = latest_schema_version()
    primary = DatabaseStatus(False, "17.6", version, [])
    assert database_line("a@h:5432/db", primary) == Check(
        "database",
        "database",
        True,
        f"a@h:5432/db reachable, primary, PostgreSQL 17.6, schema version {version}"
        f" (this release needs {version})",
    )
    standby = database_line("a@h:5432/db", DatabaseStatus(True, "17.6", version, []))
    assert not standby.ok
    assert "standby (in recovery): it takes no commands" in standby.detail
    behind = database_line("a@h:5432/db", DatabaseStatus(False, "17.6", version - 1, []))
    assert not behind.ok
    assert behind.detail.endswith(": cqrs-demo migrate")


def projection(state: str, seconds: float, **stop: object) -> ProjectionStatus:
    checkpoint = Checkpoint(Position(7, 3), 3, state, **stop)  # type: ignore[arg-type]
    return ProjectionStatus("orders", checkpoint, Position(9, 5), 2, seconds)


def test_a_projection_needs_attention_when_stopped_or_more_than_a_minute_behind() -> None:
    assert projection_check(projection("running", 60.0)) == Check(
        "projections", "orders", True, "running at 7-3, 2 events (60.0 s) behind, 3 applied"
    )
    assert not projection_check(projection("running", 60.1)).ok
    event = UUID("01a22a1f-8365-7611-a9d5-20bc0f1b8e27")
    stopped = projection_check(
        projection(
            "stopped", 1.0, error="bad", failed_event_id=event, failed_event_type="OrderCreated"
        )
    )
    assert not stopped.ok
    assert f"stopped at event {event} (OrderCreated): bad" in stopped.detail


def test_the_screen_is_coloured_on_a_terminal_only() -> None:
    checks = [
        Check("release", "release", True, "r1"),
        Check("backups", "backups", False, "none configured"),
        Check("service", "cqrs-demo.service", False, "inactive", ignored=True),
    ]
    plain = render(checks, colour=False).splitlines()
    assert plain[1:] == [
        "ok        release            r1",
        "ATTENTION backups            none configured",
        "ignored   cqrs-demo.service  inactive",
        "1 of 3 need attention: backups",
    ]
    coloured = render(checks, colour=True)
    assert "\x1b[32mok       \x1b[0m release" in coloured
    assert "\x1b[1;31mATTENTION\x1b[0m backups" in coloured
    assert use_colour(True, {"TERM": "xterm"})
    assert not use_colour(False, {"TERM": "xterm"})
    assert not use_colour(True, {"TERM": "xterm", "NO_COLOR": "1"})
    assert not use_colour(True, {"TERM": "dumb"})
