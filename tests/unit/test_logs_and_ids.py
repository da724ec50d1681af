"""Journal-friendly log lines, sd_notify datagrams and UUIDv7 identifiers."""

import asyncio
import copy
import io
import logging
import os
import pickle
import socket
import sys
import time
from pathlib import Path
from uuid import UUID

from cqrs_demo.domain.ids import _uuid_from_int, uuid7
from cqrs_demo.logs import JournalFormatter, LoopFlushedHandler, TerminalFormatter, log_line
from cqrs_demo.systemd import notify


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("cqrs_demo.test", level, __file__, 1, message, None, None)


def test_journal_lines_carry_the_syslog_priority_on_every_line() -> None:
    formatter = JournalFormatter()
    assert formatter.format(record(logging.ERROR, "boom")) == "<3>cqrs_demo.test: boom"
    assert formatter.format(record(logging.INFO, "a\nb")) == "<6>cqrs_demo.test: a\n<6>b"
    assert formatter.format(record(logging.DEBUG, "x")).startswith("<7>")
    assert formatter.format(record(logging.WARNING, "x")).startswith("<4>")


def test_terminal_lines_are_what_the_generic_formatter_writes() -> None:
    generic = logging.Formatter(
        "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter = TerminalFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "cqrs_demo.test", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    lines = [record(logging.INFO, "POST /a%20b 202 1.0ms"), failed, record(logging.DEBUG, "z")]
    for each in [*lines, lines[0]]:  # the last: the same second, from the cache
        assert formatter.format(each) == generic.format(each)
    assert formatter.format(failed).splitlines()[-1] == "ValueError: boom"
    for each in lines[::2]:  # a line made without a record is the record's line
        made = formatter.line(each.levelno, each.name, each.getMessage(), each.created)
        assert made == generic.format(each)


def test_a_line_made_without_a_record_is_the_records_line_in_the_journal() -> None:
    formatter = JournalFormatter()
    for each in [record(logging.WARNING, "POST /a 409 1.0ms"), record(logging.DEBUG, "x")]:
        made = formatter.line(each.levelno, each.name, each.getMessage(), each.created)
        assert made == formatter.format(each)


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
    # The id carries the time it was made, in milliseconds: read back a few lines later,
    # it is milliseconds old even on a loaded 2-core machine; 5 s only rules out a wrong
    # clock or unit (seconds, microseconds), which are off by years.
    assert abs((first.int >> 80) - time.time_ns() // 1_000_000) < 5_000
    assert len({uuid7() for _ in range(10_000)}) == 10_000


def test_a_forked_child_never_repeats_its_parents_uuid7_random_bits() -> None:
    uuid7()  # the parent's pool of random bytes is filled
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(writer, uuid7().bytes)
        os._exit(0)
    os.close(writer)
    child_id = UUID(bytes=os.read(reader, 16))
    os.close(reader)
    os.waitpid(child, 0)
    parent_id = uuid7()
    assert child_id.int & (2**74 - 1) != parent_id.int & (2**74 - 1)


def test_uuid7_values_are_whole_uuids() -> None:
    # uuid7 builds its UUIDs without the constructor: each must be what UUID(int=) makes.
    for value in [0, 1, 2**128 - 1, *(uuid7().int for _ in range(100))]:
        made = _uuid_from_int(value)
        expected = UUID(int=value)
        assert (made, str(made), hash(made), made.is_safe) == (
            expected,
            str(expected),
            hash(expected),
            expected.is_safe,
        )
        assert pickle.loads(pickle.dumps(made)) == expected
        assert copy.copy(made) == expected


class Lines(io.StringIO):
    """A stream that counts how often it is flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_outside_an_event_loop_every_line_is_flushed_at_once() -> None:
    stream = Lines()
    handler = LoopFlushedHandler(stream)
    handler.handle(record(logging.INFO, "one"))
    handler.handle(record(logging.INFO, "two"))
    assert (stream.getvalue(), stream.flushes) == ("one\ntwo\n", 2)


def test_in_an_event_loop_the_lines_of_one_turn_are_flushed_together() -> None:
    stream = Lines()
    handler = LoopFlushedHandler(stream)

    async def answer_requests() -> None:
        for turn in range(3):
            for number in range(20):
                handler.handle(record(logging.INFO, f"request {turn}.{number}"))
            assert stream.flushes == turn
            await asyncio.sleep(0)  # the end of this turn of the loop
            assert stream.flushes == turn + 1

    asyncio.run(answer_requests())
    assert len(stream.getvalue().splitlines()) == 60


def test_a_flush_left_due_by_a_stopped_loop_is_made_by_the_next() -> None:
    stream = Lines()
    handler = LoopFlushedHandler(stream)

    async def log_and_wait(message: str) -> None:
        handler.handle(record(logging.INFO, message))
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    loop.call_soon(handler.handle, record(logging.INFO, "first loop"))
    loop.call_soon(loop.stop)  # it stops before the flush it was given runs
    loop.run_forever()
    loop.close()
    flushes = stream.flushes
    asyncio.run(log_and_wait("second loop"))
    assert stream.flushes == flushes + 1


def journal_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own (not propagating to the root) with the service's handler."""
    stream = io.StringIO()
    handler = LoopFlushedHandler(stream)
    handler.setFormatter(JournalFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_log_line_writes_what_logger_log_writes() -> None:
    logger, stream = journal_logger("cqrs_demo.test.lines")
    for level in [logging.INFO, logging.WARNING, logging.ERROR]:
        logger.log(level, "POST /a%20b 202 1.0ms aggregate=u-1")
        log_line(logger, level, "POST /a%20b 202 1.0ms aggregate=u-1")
    logger.log(logging.WARNING, "two\nlines")
    log_line(logger, logging.WARNING, "two\nlines")  # through the record: a priority each
    lines = stream.getvalue().splitlines()
    assert lines == [
        *["<6>cqrs_demo.test.lines: POST /a%20b 202 1.0ms aggregate=u-1"] * 2,
        *["<4>cqrs_demo.test.lines: POST /a%20b 202 1.0ms aggregate=u-1"] * 2,
        *["<3>cqrs_demo.test.lines: POST /a%20b 202 1.0ms aggregate=u-1"] * 2,
        *["<4>cqrs_demo.test.lines: two", "<4>lines"] * 2,
    ]


class Collecting(logging.Handler):
    """A handler that keeps the messages it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_log_line_honours_levels_filters_and_other_handlers() -> None:
    logger, stream = journal_logger("cqrs_demo.test.levels")
    log_line(logger, logging.DEBUG, "below the logger's level")
    logger.handlers[0].setLevel(logging.ERROR)
    log_line(logger, logging.WARNING, "below the handler's level")
    assert stream.getvalue() == ""

    logger.handlers[0].setLevel(logging.NOTSET)
    logger.addFilter(lambda each: "secret" not in each.getMessage())
    log_line(logger, logging.INFO, "a secret line")
    assert stream.getvalue() == ""

    other = Collecting()
    logger.addHandler(other)
    log_line(logger, logging.INFO, "to both handlers")
    assert stream.getvalue() == "<6>cqrs_demo.test.levels: to both handlers\n"
    assert other.messages == ["to both handlers"]
