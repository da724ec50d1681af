"""Log lines that read well in a terminal and in ``journalctl``.

Under systemd (``JOURNAL_STREAM`` set) each line starts with its syslog priority, ``<3>``
for errors to ``<7>`` for debug, so ``journalctl -p err`` filters, and carries no timestamp
(the journal adds its own). Elsewhere each line starts with an ISO timestamp and the level.
"""

import asyncio
import io
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

_PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class LineFormatter(logging.Formatter):
    """A formatter whose one-line records can also be written without a ``LogRecord``
    (``LoopFlushedHandler.write_line``): ``line`` gives the text ``format`` gives a record."""

    def line(self, levelno: int, name: str, message: str, created: float) -> str:
        """The line of a record of logger ``name`` at ``levelno``, made at ``created``
        (``time.time()``), whose message is ``message`` (one line)."""
        raise NotImplementedError

    def format_lines(self, record: logging.LogRecord) -> str:
        """A record of several lines (a traceback, a stack, a line break in the message)."""
        return super().format(record)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info or record.exc_text or record.stack_info or not _one_line(message):
            return self.format_lines(record)
        return self.line(record.levelno, record.name, message, record.created)


def _one_line(message: str) -> bool:
    return "\n" not in message and "\r" not in message


class JournalFormatter(LineFormatter):
    """``name: message``, every line of a record (tracebacks included) prefixed with its
    syslog priority."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def line(self, levelno: int, name: str, message: str, created: float) -> str:
        return f"<{_PRIORITIES.get(levelno, 6)}>{name}: {message}"

    def format_lines(self, record: logging.LogRecord) -> str:
        priority = _PRIORITIES.get(record.levelno, 6)
        lines = super().format_lines(record).splitlines()
        return "\n".join(f"<{priority}>{line}" for line in lines)


class TerminalFormatter(LineFormatter):
    """``2026-11-26T11:48:04.123 INFO name: message``, in local time."""

    DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", self.DATE_FORMAT
        )
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's second in ``DATE_FORMAT`` (the only format this formatter uses)."""
        return self._local_second(record.created)

    def _local_second(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # lines come many a second: format each second once
            self._stamp = time.strftime(self.DATE_FORMAT, self.converter(second))
            self._second = second
        return self._stamp

    def line(self, levelno: int, name: str, message: str, created: float) -> str:
        milliseconds = int((created - int(created)) * 1000)  # as LogRecord.msecs
        level = logging.getLevelName(levelno)
        return f"{self._local_second(created)}.{milliseconds:03d} {level} {name}: {message}"


class LoopFlushedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that, inside a running event loop, writes its lines out once per
    loop iteration instead of once per line: one ``write`` for all the access-log lines of
    the requests answered in that iteration. Outside a loop it flushes every record.

    (Flushing later, at most once a millisecond, made fewer writes but put them where a
    lone client's next request was waiting: 0.92x requests/s at one connection.)"""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        # A loop that stopped before the flush ran (tests run many) does not count.
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled_on = None
        super().flush()

    def write_line(self, levelno: int, name: str, message: str) -> None:
        """Write what ``handle`` writes for a record of ``message`` (one line, no
        arguments), without making the record. Callers check levels and filters first
        (``log_line``)."""
        assert isinstance(self.formatter, LineFormatter)
        try:
            text = self.formatter.line(levelno, name, message, time.time())
            with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
                self.stream.write(text + self.terminator)
                self.flush()
        except Exception:
            self.handleError(logging.LogRecord(name, levelno, "", 0, message, None, None))


def log_line(logger: logging.Logger, level: int, message: str) -> None:
    """``logger.log(level, message)`` for a message without arguments, and cheaper.

    When the record would reach one handler only, a ``LoopFlushedHandler`` with a
    ``LineFormatter`` (as ``configure_logging`` sets up), and no filter, the line is written
    to that handler directly: the same text, without a ``LogRecord`` and the steps that
    carry it, which cost a busy worker more than the rest of its access-log line
    (docs/performance.md). Otherwise the message goes through ``logger.log``."""
    if not logger.isEnabledFor(level):
        return
    handler = _sole_line_handler(logger)
    if handler is None or level < handler.level or not _one_line(message):
        logger.log(level, message)
    else:
        handler.write_line(level, logger.name, message)


def _sole_line_handler(logger: logging.Logger) -> LoopFlushedHandler | None:
    """The one handler a record of ``logger`` would reach, if it is a filterless
    ``LoopFlushedHandler`` with a ``LineFormatter`` and ``logger`` has no filter."""
    if logger.filters:
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if (
        isinstance(found, LoopFlushedHandler)
        and not found.filters
        and isinstance(found.formatter, LineFormatter)
    ):
        return found
    return None


class BurstLog:
    """Warnings that may come in bursts (a flood of clients passing a limit): the first of a
    kind in a window of ``window`` seconds is logged in full, the others counted in one line
    when the window ends. Used inside a running event loop."""

    def __init__(self, logger: logging.Logger, window: float) -> None:
        self._logger = logger
        self._window = window
        self._since_line: dict[str, int] = {}

    def hit(self, kind: str, message: str) -> None:
        if kind in self._since_line:
            self._since_line[kind] += 1
            return
        self._logger.warning("%s", message)
        self._since_line[kind] = 0
        asyncio.get_running_loop().call_later(self._window, self._end_window, kind)

    def _end_window(self, kind: str) -> None:
        count = self._since_line.pop(kind)
        if count:
            self._logger.warning("%s: %d more in the last %g s", kind, count, self._window)


def buffered_stderr() -> TextIO:
    """Standard error with a buffer of its own (``sys.stderr`` writes every line at once)."""
    raw = io.FileIO(sys.stderr.fileno(), "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 1 << 16), encoding="utf-8", errors="backslashreplace"
    )


def configure_logging(level: str, environ: Mapping[str, str] = os.environ) -> None:
    """Send every log record at ``level`` or above to stderr, one line each."""
    # Nothing in our lines uses the caller's file and line, thread or process: not
    # looking them up makes a record about a third cheaper (logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopFlushedHandler(buffered_stderr())
    formatter = JournalFormatter() if environ.get("JOURNAL_STREAM") else TerminalFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # psycopg_pool logs every failed reconnection attempt at WARNING; one line from us suffices.
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, root.level))
