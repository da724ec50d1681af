"""The lines of ``cqrs-demo status`` from what was found: backups, the database, the
projections, and the screen with and without colour. No I/O."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from cqrs_demo.ports import Checkpoint, Position, ProjectionStatus
from cqrs_demo.status import (
    BackupInfoError,
    Check,
    LastBackup,
    backups_check,
    backups_line,
    database_line,
    last_backup,
    projection_check,
    render,
    use_colour,
)
from cqrs_demo.store.sql import latest_schema_version
from cqrs_demo.store.status import DatabaseStatus

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def test_backups_need_attention_until_configured_and_when_the_last_is_older_than_26_h() -> None:
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
    assert backups_check(stale, now=NOW, configured=True).detail.endswith(
        "3.0 days ago, over 26.0 h: journalctl -u 'cqrs-demo-backup@*'"
    )


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


# What `pgbackrest --output=json info` said (pgBackRest 2.45, Debian 12's package), saved
# as it printed it: a stanza with a full and a differential backup, one created but with
# none yet, and a repository without the stanza. How they were made: pgbackrest/README.
INFO = Path(__file__).with_name("pgbackrest")


def test_the_newest_backup_of_pgbackrest_info_is_the_last_to_finish() -> None:
    last = last_backup((INFO / "info-full-and-diff.json").read_text())
    assert last == LastBackup(
        datetime(2026, 11, 30, 7, 3, 45, tzinfo=UTC),
        "diff backup 20261130-070339F_20261130-070344D",
    )
    assert last_backup((INFO / "info-no-backup.json").read_text()) is None


def test_the_backups_line_reads_the_units_info_and_ages_it(tmp_path: Path) -> None:
    info = tmp_path / "info.json"
    info.write_text((INFO / "info-full-and-diff.json").read_text())
    assert backups_line(info, now=datetime(2026, 11, 30, 9, 33, 45, tzinfo=UTC)) == Check(
        "backups",
        "backups",
        True,
        "last diff backup 20261130-070339F_20261130-070344D finished 2026-11-30 07:03 UTC,"
        " 2.5 h ago",
    )
    late = backups_line(info, now=datetime(2026, 12, 1, 9, 33, 46, tzinfo=UTC))
    assert not late.ok
    assert late.detail.endswith(" 26.5 h ago, over 26.0 h: journalctl -u 'cqrs-demo-backup@*'"), (
        late.detail
    )
    fresh_but_none = tmp_path / "none.json"
    fresh_but_none.write_text((INFO / "info-no-backup.json").read_text())
    assert backups_line(fresh_but_none, now=NOW) == Check(
        "backups", "backups", False, "configured, but none made yet"
    )


def test_no_info_file_is_no_backup_configured_here(tmp_path: Path) -> None:
    missing = tmp_path / "info.json"
    assert backups_line(missing, now=NOW) == Check(
        "backups",
        "backups",
        False,
        f"none configured on this host (no {missing}; docs/operations.md, Backup and restore)",
    )


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        (
            (INFO / "info-missing-stanza.json").read_text(),
            "stanza cqrs-demo: status 1, missing stanza path",
        ),
        ("[]", "0 stanzas, 1 expected"),
        ('{"name": "cqrs-demo"}', "no list of stanzas, 1 expected"),
        ("[{}]", "not pgBackRest's info: KeyError 'status'"),
        ("not json", "not pgBackRest's info: JSONDecodeError Expecting value"),
    ],
)
def test_info_that_is_not_one_sound_stanza_needs_attention_saying_why(
    tmp_path: Path, info: str, problem: str
) -> None:
    path = tmp_path / "info.json"
    path.write_text(info)
    with pytest.raises(BackupInfoError, match=re.escape(problem)):
        last_backup(info)
    line = backups_line(path, now=NOW)
    assert not line.ok
    assert line.detail.startswith(f"{path}: {problem}"), line.detail
