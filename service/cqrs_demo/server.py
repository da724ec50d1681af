"""Serving the API: a main process that binds the socket and supervises worker processes.

The main process binds ``host:port`` once and starts ``workers`` processes (spawned, not
forked) that share the socket, each running uvicorn with its own event loop and pool.
It tells systemd ``READY=1`` only when every worker has opened its pool and checked the
schema, and ``STOPPING=1`` on SIGTERM or SIGINT; each worker then drains its in-flight
requests (uvicorn's graceful shutdown) and closes its pool. A worker that dies on its own
stops the others, and the main process exits 1 so that systemd restarts the service.
With ``CQRS_METRICS_PORT`` set, the main process also serves the metrics of every worker
(``metrics.export.api_endpoint``).
"""

import asyncio
import dataclasses
import gc
import logging
import multiprocessing
import os
import resource
import signal
import socket
import time
from contextlib import AbstractContextManager, nullcontext
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType

import uvicorn
import uvloop

from cqrs_demo.bootstrap import create_app
from cqrs_demo.http_edge import Edge, EdgeLimits, EdgeProtocol
from cqrs_demo.logs import configure_logging
from cqrs_demo.release import release_id
from cqrs_demo.settings import Settings
from cqrs_demo.systemd import notify

log = logging.getLogger("cqrs_demo.server")

START_TIMEOUT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 20.0
# After the drain, how long the requests uvicorn cancelled get before they are cancelled
# again (_close_what_the_drain_left); inside the 5 s the main process gives a worker.
CUT_SHORT_SECONDS = 1.0
# Files a worker keeps besides its clients' connections and its pool's: the listening
# socket, the event loop's, its log, the interpreter's, with room to spare.
FILES_RESERVED = 64
MAX_URL_BYTES = 8192


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT (exit 0) or until a worker fails (exit 1)."""
    settings = dataclasses.replace(settings, max_connections=connection_budget(settings))
    listener = bind(settings.host, settings.port)
    try:
        with _metrics_endpoint(settings):
            return _serve(settings, listener)
    finally:
        listener.close()


def _metrics_endpoint(settings: Settings) -> AbstractContextManager[None]:
    if settings.metrics_port is None:
        return nullcontext()
    from cqrs_demo.metrics.export import api_endpoint  # prometheus_client: only when on

    return api_endpoint(settings.metrics_host, settings.metrics_port)


def _serve(settings: Settings, listener: socket.socket) -> int:
    context = multiprocessing.get_context("spawn")
    # A pipe, not a Queue: a Queue's lock is a semaphore that the resource tracker watches
    # (_stop_resource_tracker): stopped first, it would report it leaked, and the Queue's
    # clean-up at exit would start a tracker again.
    ready, ready_writer = context.Pipe(duplex=False)
    workers = [
        context.Process(
            target=run_worker, args=(settings, listener, ready_writer), name=f"worker-{n}"
        )
        for n in range(settings.workers)
    ]
    stop_requested = _catch_stop_signals()
    for worker in workers:
        worker.start()
    try:
        if not _await_ready(workers, ready, stop_requested):
            return 0 if stop_requested() else 1
        notify(
            f"READY=1\nSTATUS=serving on {settings.host}:{settings.port}, release {release_id()}"
        )
        log.info(
            "serving on http://%s:%d with %d worker(s), release %s",
            settings.host,
            settings.port,
            len(workers),
            release_id(),
        )
        return _supervise(workers, stop_requested)
    finally:
        notify("STOPPING=1")
        _stop(workers)
        _stop_resource_tracker()
        codes = ", ".join(f"{worker.name} {worker.exitcode}" for worker in workers)
        log.info("stopped; workers' exit codes: %s", codes)


def connection_budget(settings: Settings) -> int:
    """How many client connections a worker may hold: ``settings.max_connections``, or
    fewer when the open-file limit (first raised to its hard limit, where allowed) leaves
    less after the pool and ``FILES_RESERVED``. Past the budget a worker closes idle
    connections or answers 503 (``http_edge``), never failing to accept one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):  # the unit's system-call filter refuses it
            pass
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    budget = max(1, soft - settings.pool_max_size - FILES_RESERVED)
    if budget < settings.max_connections:
        log.warning(
            "the open-file limit of %d allows %d client connections per worker, fewer than"
            " CQRS_MAX_CONNECTIONS=%d (raise LimitNOFILE)",
            soft,
            budget,
            settings.max_connections,
        )
        return budget
    return settings.max_connections


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, shared by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}") from None
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def run_worker(settings: Settings, listener: socket.socket, ready: Connection) -> None:
    """A worker process: uvicorn on the shared socket; reports its pid once serving."""
    # Ctrl-C in a terminal reaches every process of the group, workers too. uvicorn handles
    # the SIGINT (a graceful stop) and then raises it again for the handler it replaced;
    # with asyncio's default one that ends the drained worker in a KeyboardInterrupt
    # traceback. Ignored here, the re-raise is a no-op; uvicorn still catches the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings.log_level)
    limits = EdgeLimits(
        max_connections=settings.max_connections,
        head_bytes=settings.head_limit,
        url_bytes=min(MAX_URL_BYTES, settings.head_limit // 2),
        head_seconds=settings.head_timeout,
    )

    def stopping() -> bool:
        return server.should_exit  # asked only by requests, once the server below exists

    config = uvicorn.Config(
        create_app(settings, stopping=stopping),
        lifespan="on",
        http=EdgeProtocol.serving(Edge(limits)),
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # nothing in front is trusted to set X-Forwarded-For
        timeout_graceful_shutdown=int(DRAIN_TIMEOUT_SECONDS),
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    # uvicorn catches SIGTERM while it serves, drains, and then raises it again for the
    # handler it replaced; the default one would end the worker there, its last log lines
    # unwritten. This one asks for a stop (before uvicorn serves, or a no-op after it).
    signal.signal(signal.SIGTERM, stop)

    async def main() -> None:
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        watching = asyncio.create_task(_stop_when_orphaned(server))
        cutting = asyncio.create_task(_close_what_the_drain_left(server))
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.02)
        if server.started:
            # Everything made at start-up lives as long as the process: keep it out of the
            # garbage collector's scans, which otherwise run every few hundred requests.
            gc.freeze()
            ready.send(os.getpid())
        await serving
        watching.cancel()
        cutting.cancel()

    uvloop.run(main())
    if not server.started:
        raise SystemExit(3)
    log.info("worker stopped: in-flight requests answered, pool closed")
    for handler in logging.getLogger().handlers:
        handler.flush()  # outside the loop: written now


async def _close_what_the_drain_left(server: uvicorn.Server) -> None:
    """Once the stop's drain has run out and uvicorn has cancelled the requests left, cancel
    those still running again, ``CUT_SHORT_SECONDS`` later. A request whose own statement
    was running when cancelled (a stream read, say) waits for psycopg to cancel it in the
    server, up to 10 s when the server answers nothing, and the main process kills a
    worker 5 s after the drain; cancelled again, psycopg closes that connection at once and
    the request is answered 503 (``api.problems.answer_if_stopping``). (``server_state.tasks``:
    uvicorn's requests in flight.)"""
    while not server.should_exit:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.5)  # as seldom as the orphan watch: the cut may come 0.5 s late
    await asyncio.sleep(DRAIN_TIMEOUT_SECONDS + CUT_SHORT_SECONDS)
    for task in list(server.server_state.tasks):
        task.cancel()


async def _stop_when_orphaned(server: uvicorn.Server) -> None:
    """Drain and stop if the main process dies (``kill -9``, a crash): an orphaned worker
    would keep serving on the shared socket, and systemd would wait for it before it
    restarts the service."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells of a parent's death
        await asyncio.sleep(0.5)
    log.error("the main process (pid %d) is gone; stopping this worker", parent)
    server.should_exit = True


def _catch_stop_signals() -> "StopFlag":
    flag = StopFlag()
    signal.signal(signal.SIGTERM, flag.set)
    signal.signal(signal.SIGINT, flag.set)
    return flag


class StopFlag:
    """Set by SIGTERM or SIGINT; calling it tells whether a stop was asked for."""

    def __init__(self) -> None:
        self._set = False

    def set(self, signum: int, frame: FrameType | None) -> None:
        if not self._set:
            log.info("stopping on %s: draining in-flight requests", signal.Signals(signum).name)
        self._set = True

    def __call__(self) -> bool:
        return self._set


def _await_ready(workers: list[SpawnProcess], ready: Connection, stop_requested: StopFlag) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    waiting = len(workers)
    while waiting and not stop_requested():
        if any(not worker.is_alive() for worker in workers):
            log.error("a worker failed to start (see the lines above); exiting")
            return False
        if time.monotonic() > deadline:
            log.error("workers not ready after %.0f s; exiting", START_TIMEOUT_SECONDS)
            return False
        if ready.poll(0.1):
            ready.recv()  # a message this small is one write to the pipe: never interleaved
            waiting -= 1
    return not waiting


def _stop_resource_tracker() -> None:
    """Stop the helper process that ``spawn`` started beside the workers (multiprocessing's
    resource tracker) and wait for it, once the workers are gone. By itself it exits only
    after this process has: under systemd too late, as the unit's main process exited,
    systemd kills what is left of the unit (a SIGKILL line in the journal on every stop).
    ``_stop`` is the tracker's own method (CPython 3.11 to 3.13), not a public one."""
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()


def _supervise(workers: list[SpawnProcess], stop_requested: StopFlag) -> int:
    while not stop_requested():
        ended = wait([worker.sentinel for worker in workers], timeout=0.5)
        if ended and not stop_requested():
            time.sleep(0.2)  # a stop signal may be on its way to us too
            if stop_requested():
                break
            dead = next(worker for worker in workers if not worker.is_alive())
            log.error(
                "%s (pid %s) exited with code %s; stopping the service",
                dead.name,
                dead.pid,
                dead.exitcode,
            )
            return 1
    return 0


def _stop(workers: list[SpawnProcess]) -> None:
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS + 5
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            log.error("%s (pid %s) did not stop in time; killing it", worker.name, worker.pid)
            worker.kill()
            worker.join()
