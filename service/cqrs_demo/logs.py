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
    """Prefix every line of a record, tracebacks included, with its syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITIES.get(record.levelno, 6)
        text = super().format(record)
        if "\n" not in text and "\r" not in text:
            return f"<{priority}>{text}"
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


class LoopFlushedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that, inside a running event loop, writes its lines out once per
    loop iteration instead of once per line: one ``write`` for all the access-log lines of
    the requests answered in that iteration. Outside a loop it flushes every record."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flush_scheduled = False

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().flush()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
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
    if environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                datefmt="%Y-%m-%dT%H:%M:%S",
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # psycopg_pool logs every failed reconnection attempt at WARNING; one line from us suffices.
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, root.level))
