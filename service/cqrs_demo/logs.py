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


class JournalFormatter(logging.Formatter):
    """``name: message``, every line of a record (tracebacks included) prefixed with its
    syslog priority."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITIES.get(record.levelno, 6)
        text = _plain(record) or super().format(record)
        if "\n" not in text and "\r" not in text:
            return f"<{priority}>{text}"
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


class TerminalFormatter(logging.Formatter):
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
        second = int(record.created)
        if second != self._second:  # lines come many a second: format each second once
            self._stamp = time.strftime(self.DATE_FORMAT, self.converter(second))
            self._second = second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        text = _plain(record)
        if not text:
            return super().format(record)
        return f"{self.formatTime(record)}.{int(record.msecs):03d} {record.levelname} {text}"


def _plain(record: logging.LogRecord) -> str:
    """``name: message`` for a record without a traceback or stack, else ``""``. What
    ``Formatter.format`` makes of it, without its generic steps: one line per request
    goes through here."""
    if record.exc_info or record.exc_text or record.stack_info:
        return ""
    return f"{record.name}: {record.getMessage()}"


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
