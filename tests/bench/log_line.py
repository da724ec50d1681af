"""CPU per access-log line, in-process: the service's logging set-up, a line of the
usual size, into memory, inside an event loop as in a worker (20 lines per loop turn).
Prints microseconds per line for each output format, through ``Logger.info`` (a
``LogRecord`` per line) and through ``logs.log_line`` (what the access log uses).

    .venv/bin/python -m tests.bench.log_line
"""

import asyncio
import io
import logging
import time

from cqrs_demo.logs import configure_logging, log_line

LINES = 100_000
LINE = "POST /api/commands/order/create 202 4.7ms aggregate=u-1234 version=1 events=1"


async def per_line(journal: bool, direct: bool) -> float:
    configure_logging("info", {"JOURNAL_STREAM": "1"} if journal else {})
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    log = logging.getLogger("cqrs_demo.request")
    started = time.process_time()
    for number in range(LINES):
        if direct:
            log_line(log, logging.INFO, LINE)
        else:
            log.info(LINE)
        if number % 20 == 0:
            await asyncio.sleep(0)  # the end of a loop turn: the lines are flushed
            handler.stream.seek(0)
            handler.stream.truncate()
    return (time.process_time() - started) / LINES * 1e6


def main() -> None:
    for journal in (True, False):
        for direct in (False, True):
            name = ("journal" if journal else "terminal") + (", log_line" if direct else ", info")
            cpu = asyncio.run(per_line(journal, direct))
            print(f"{name}: {cpu:.2f} us CPU per line ({LINES} lines)")


if __name__ == "__main__":
    main()
