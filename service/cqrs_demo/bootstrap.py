"""The one place that wires settings, the store and the API together."""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

from starlette.applications import Starlette

from cqrs_demo.api.app import HotPathsFirst, build_app
from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules
from cqrs_demo.api.feed import never
from cqrs_demo.domain.projections import PROJECTIONS
from cqrs_demo.metrics.tally import TALLY
from cqrs_demo.ports import Checkpoint, RowsExist
from cqrs_demo.projector.feed import SharedFeed
from cqrs_demo.projector.process import Projector
from cqrs_demo.projector.rebuild import Progress, rebuild
from cqrs_demo.projector.runner import Parts
from cqrs_demo.projector.stopping import until_signal
from cqrs_demo.settings import Settings
from cqrs_demo.store.conninfo import describe
from cqrs_demo.store.errors import StoreError, StoreUnavailable
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.feed import ProjectionFeed
from cqrs_demo.store.notifications import listen
from cqrs_demo.store.order_queries import PostgresOrderQueries
from cqrs_demo.store.pool import Database
from cqrs_demo.store.projection_lock import PostgresProjectionLocks
from cqrs_demo.store.projections import PostgresReadModels
from cqrs_demo.store.rebuild import open_rebuild
from cqrs_demo.store.schema import check_schema

log = logging.getLogger("cqrs_demo")

START_TIMEOUT_SECONDS = 10.0
PRUNE_EVERY_SECONDS = 600.0
PUBLISH_EVERY_SECONDS = 1.0
# The longest a stop waits for a pool's background tasks (a reconnection to a server that
# answers nothing would take its connect_timeout): the projector's and a rebuild's, after
# their tasks' grace (projector.stopping.STOP_GRACE_SECONDS), the projector's well inside its
# unit's TimeoutStopSec (15 s); an API worker's, after the drain, inside the 5 s the main
# process gives it (server._stop).
STOP_POOL_SECONDS = 1.0


def create_app(settings: Settings, *, stopping: Callable[[], bool] = never) -> HotPathsFirst:
    """The application for one worker process. Nothing connects until its lifespan starts:
    then the pool opens (waiting for ``pool_min_size`` connections) and the schema is checked;
    if either fails, start-up fails with a message naming the database. ``stopping`` tells
    when the worker has begun to stop (long polls of the feed then answer at once).

    With ``settings.read_conninfo`` (``CQRS_READ_DATABASE_URL``) the queries read from a
    second pool of the same size on it (opened and checked the same way, its failure naming
    the read database); the commands, the stream reads, the feed, ``/api/projections`` and
    ``/readyz`` stay on the first."""
    database = _pool(settings, settings.conninfo)
    pools = [(database, settings.conninfo, "database")]
    read_database = database
    if settings.read_conninfo is not None:
        read_database = _pool(settings, settings.read_conninfo)
        pools.append((read_database, settings.read_conninfo, "read database"))
    store = PostgresEventStore(
        database,
        idempotency_retention=timedelta(hours=settings.idempotency_retention_hours),
        max_batch=settings.group_commit_max_batch,
        max_in_flight=settings.group_commit_writers,
        overlap_after=settings.group_commit_overlap_ms / 1000,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened: list[Database] = []
        pruning = publishing = None
        try:
            versions = [
                await _open_checked(pool, conninfo, settings, opened, what=what)
                for pool, conninfo, what in pools
            ]
            log.info(
                "ready: schema version %d, pool %d..%d connections%s%s",
                versions[0],
                settings.pool_min_size,
                settings.pool_max_size,
                ""
                if settings.read_conninfo is None
                else ", queries read from " + describe(settings.read_conninfo),
                ", bearer tokens required" if settings.tokens else "",
            )
            pruning = asyncio.create_task(_prune_idempotency_keys(store))
            if settings.metrics_port is not None:
                publishing = asyncio.create_task(
                    _publish_metrics(database, None if read_database is database else read_database)
                )
            yield
        finally:
            for task in (pruning, publishing):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for pool in opened:
                await pool.close(wait_seconds=STOP_POOL_SECONDS)

    return build_app(
        store=store,
        check_ready=partial(check_schema, database),
        tokens=BearerTokens(settings.tokens, verification=settings.verify_tokens),
        body=BodyRules(limit=settings.body_limit, seconds=settings.body_timeout),
        lifespan=lifespan,
        stopping=stopping,
        read_models=PostgresOrderQueries(read_database, projector_database=database),
    )


def _pool(settings: Settings, conninfo: str) -> Database:
    """An API worker's pool on ``conninfo``, sized and timed by ``settings``; not open."""
    return Database(
        conninfo,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
    )


async def _open_checked(
    database: Database,
    conninfo: str,
    settings: Settings,
    opened: list[Database],
    *,
    what: str,
) -> int:
    """Open ``database`` (adding it to ``opened``, to be closed) and check its schema; the
    schema version. Raises ``StoreUnavailable`` naming ``what`` and where (never the
    password) when no connection came within ``START_TIMEOUT_SECONDS`` (or the pool
    timeout, if longer), ``SchemaNotCurrent`` when the schema is behind this release."""
    try:
        await database.open(wait_seconds=max(settings.pool_timeout, START_TIMEOUT_SECONDS))
    except StoreUnavailable as error:
        raise StoreUnavailable(
            f"cannot connect to the {what} {describe(conninfo)}: {error}"
        ) from None
    opened.append(database)
    return await check_schema(database)


async def _prune_idempotency_keys(store: PostgresEventStore) -> None:
    """Forget expired idempotency keys every ten minutes or so (jittered across workers)."""
    while True:
        await asyncio.sleep(PRUNE_EVERY_SECONDS * random.uniform(0.5, 1.5))  # noqa: S311
        try:
            removed = await store.prune_idempotency_keys()
        except (StoreUnavailable, StoreError) as error:
            log.warning("pruning idempotency keys failed: %s", error)
        else:
            if removed:
                log.info("pruned %d expired idempotency keys", removed)
            if TALLY.on:
                TALLY.pruned(removed)


async def _publish_metrics(database: Database, read_database: Database | None) -> None:
    """Count this worker's requests (``TALLY``) and move the counts into the metrics every
    ``PUBLISH_EVERY_SECONDS``, and once more when cancelled (the drained requests' too),
    with the pools' gauges (``pool="write"``, and ``pool="read"`` for a read pool of its
    own). The seconds since the last move count as unreachable when the store is still
    known unreachable after one try for a connection (``_reach``)."""
    from cqrs_demo.metrics.export import ApiMetrics  # prometheus_client: only when on

    def pools() -> dict[str, dict[str, int]]:
        stats = {"write": database.pool.get_stats()}
        if read_database is not None:
            stats["read"] = read_database.pool.get_stats()
        return stats

    metrics = ApiMetrics()
    TALLY.on = True
    metrics.publish(TALLY.take(), pools(), 0.0)  # the pools', at once
    last = time.monotonic()
    try:
        while True:
            await asyncio.sleep(PUBLISH_EVERY_SECONDS)
            if database.unreachable:
                await _reach(database)
            now = time.monotonic()
            unreachable = now - last if database.unreachable else 0.0
            metrics.publish(TALLY.take(), pools(), unreachable)
            last = now
    finally:
        metrics.publish(TALLY.take(), pools(), 0.0)


async def _reach(database: Database) -> None:
    """Try for a connection (``UNREACHABLE_WAIT_SECONDS`` at most): a worker that found the
    store unreachable learns it is back without waiting for a request, so an idle worker
    does not count the seconds after an outage as unreachable."""
    with contextlib.suppress(StoreUnavailable, StoreError):
        async with database.connection():
            pass


def create_projector(settings: Settings) -> Projector:
    """The ``cqrs-demo project`` process's parts: a small pool (the feed, the read models;
    statements planned with their values and commits that do not wait for the WAL flush,
    ``Database``'s ``custom_plans`` and ``derived_commits``), a lock
    connection per projection, the listening connection. Nothing connects until its
    ``start``."""
    database = Database(
        settings.conninfo,
        min_size=1,
        max_size=len(PROJECTIONS) + 1,
        timeout=settings.pool_timeout,
        custom_plans=True,
        derived_commits=True,
    )
    read_models = PostgresReadModels(database)
    parts = Parts(
        feed=SharedFeed(ProjectionFeed(database), batch_size=settings.projector_batch_size),
        read_models=read_models,
        locks=PostgresProjectionLocks(
            settings.conninfo, poll_seconds=settings.projector_poll_seconds
        ),
        poll_seconds=settings.projector_poll_seconds,
    )

    close_metrics: list[Callable[[], None]] = []

    async def start() -> None:
        try:
            await database.open(wait_seconds=max(settings.pool_timeout, START_TIMEOUT_SECONDS))
        except StoreUnavailable as error:
            where = describe(settings.conninfo)
            raise StoreUnavailable(f"cannot connect to the database {where}: {error}") from None
        version = await check_schema(database)
        log.info("projector connected: schema version %d", version)
        metrics_port = settings.projector_metrics_port
        if metrics_port is not None:
            close_metrics.append(
                _projector_metrics(settings.metrics_host, metrics_port, read_models)
            )

    async def stop() -> None:
        for close in close_metrics:
            close()
        await database.close(wait_seconds=STOP_POOL_SECONDS)

    return Projector(
        projections=PROJECTIONS,
        parts=parts,
        start=start,
        stop=stop,
        listen=partial(listen, settings.conninfo),
        outlived=(StoreUnavailable, StoreError, RowsExist),
    )


def _projector_metrics(host: str, port: int, read_models: PostgresReadModels) -> Callable[[], None]:
    """The projector's metrics endpoint (``CQRS_PROJECTOR_METRICS_PORT``), reading the
    projections' status on this event loop at each scrape; returns its ``close``."""
    from cqrs_demo.metrics.export import ProjectionCollector, projector_endpoint

    status = partial(read_models.status, list(PROJECTIONS))
    collector = ProjectionCollector(status, asyncio.get_running_loop())
    return projector_endpoint(host, port, collector)


async def rebuild_projection(
    conninfo: str, name: str, *, afresh: bool, batch_size: int, progress: Progress
) -> Checkpoint:
    """``cqrs-demo projections rebuild``: rebuild projection ``name`` (one rebuild of it at a
    time: a second waits for the first) and swap it in; see ``projector.rebuild``. SIGTERM
    or SIGINT stops it within seconds (``projector.stopping.until_signal``): raises
    ``Stopped``, what it had committed kept."""
    rebuilding, pools = await open_rebuild(conninfo, name)
    try:
        feed = SharedFeed(ProjectionFeed(pools[0]), batch_size=batch_size, keep_pages=2)
        locks = PostgresProjectionLocks(conninfo, poll_seconds=1.0)

        async def rebuilt() -> Checkpoint:
            async with locks.hold(rebuilding.name):
                return await rebuild(PROJECTIONS[name], rebuilding, feed, progress, afresh=afresh)

        return await until_signal(rebuilt(), name=f"rebuild {name}", also=feed.reads)
    finally:
        for pool in pools:
            await pool.close(wait_seconds=STOP_POOL_SECONDS)


async def drop_rebuild(conninfo: str, name: str) -> None:
    """``cqrs-demo projections rebuild --drop``: drop the rebuild of ``name`` (tables and
    checkpoint), once no rebuild of it runs. SIGTERM or SIGINT stops it as they stop a
    rebuild."""
    rebuilding, pools = await open_rebuild(conninfo, name)
    try:

        async def dropped() -> None:
            async with PostgresProjectionLocks(conninfo, poll_seconds=1.0).hold(rebuilding.name):
                await rebuilding.drop()

        await until_signal(dropped(), name=f"drop the rebuild of {name}")
    finally:
        for pool in pools:
            await pool.close(wait_seconds=STOP_POOL_SECONDS)
