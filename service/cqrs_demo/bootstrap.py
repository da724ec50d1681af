"""The one place that wires settings, the store and the API together."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette

from cqrs_demo.api.app import build_app
from cqrs_demo.settings import Settings
from cqrs_demo.store.conninfo import describe
from cqrs_demo.store.errors import StoreUnavailable
from cqrs_demo.store.events import PostgresEventStore
from cqrs_demo.store.pool import create_pool
from cqrs_demo.store.schema import check_schema

log = logging.getLogger("cqrs_demo")


def create_app(settings: Settings) -> Starlette:
    """The application for one worker process. Nothing connects until its lifespan starts:
    then the pool opens (waiting for ``pool_min_size`` connections) and the schema is checked;
    if either fails, start-up fails with a message naming the database."""
    pool = create_pool(
        settings.conninfo,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await pool.open(wait=True, timeout=max(settings.pool_timeout, 10.0))
        except Exception as error:
            database = describe(settings.conninfo)
            raise StoreUnavailable(f"cannot connect to the database {database}") from error
        try:
            version = await check_schema(pool)
            log.info(
                "ready: schema version %d, pool %d..%d connections",
                version,
                settings.pool_min_size,
                settings.pool_max_size,
            )
            yield
        finally:
            await pool.close()

    return build_app(
        store=PostgresEventStore(pool),
        check_ready=partial(check_schema, pool),
        body_limit=settings.body_limit,
        lifespan=lifespan,
    )
