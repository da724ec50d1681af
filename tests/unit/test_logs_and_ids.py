"""Journal-friendly log lines, sd_notify datagrams and UUIDv7 identifiers."""

import logging
import socket
import time
from pathlib import Path

from cqrs_demo.domain.ids import uuid7
from cqrs_demo.logs import JournalFormatter
from cqrs_demo.systemd import notify


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("cqrs_demo.test", level, __file__, 1, message, None, None)


def test_journal_lines_carry_the_syslog_priority_on_every_line() -> None:
    formatter = JournalFormatter("%(name)s: %(message)s")
    assert formatter.format(record(logging.ERROR, "boom")) == "<3>cqrs_demo.test: boom"
    assert formatter.format(record(logging.INFO, "a\nb")) == "<6>cqrs_demo.test: a\n<6>b"
    assert formatter.format(record(logging.DEBUG, "x")).startswith("<7>")
    assert formatter.format(record(logging.WARNING, "x")).startswith("<4>")


def test_notify_sends_the_state_to_the_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(path)
        assert notify("READY=1", {"NOTIFY_SOCKET": path})
        assert receiver.recv(100) == b"READY=1"
    assert not notify("READY=1", {})


def test_uuid7_has_version_7_and_sorts_by_time() -> None:
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    assert first.version == 7
    assert first.variant == "specified in RFC 4122"
    assert first < second
    assert abs((first.int >> 80) - time.time_ns() // 1_000_000) < 5_000
    assert len({uuid7() for _ in range(10_000)}) == 10_000
