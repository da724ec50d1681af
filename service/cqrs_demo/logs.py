"""Log lines that read well in a terminal and in ``journalctl``.

Under systemd (``JOURNAL_STREAM`` set) each line starts with its syslog priority, ``<3>``
for errors to ``<7>`` for debug, so ``journalctl -p err`` filters, and carries no timestamp
(the journal adds its own). Elsewhere each line starts with an ISO timestamp and the level.
"""

import logging
import os
import sys
from collections.abc import Mapping

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
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def configure_logging(level: str, environ: Mapping[str, str] = os.environ) -> None:
    """Send every log record at ``level`` or above to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
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
