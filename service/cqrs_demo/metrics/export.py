"""The metrics in ``prometheus_client``'s terms, and the endpoints that serve them.

The API (``cqrs-demo serve``) runs in several worker processes behind one socket, so a
scrape of one worker would see only its share. The library's multiprocess mode adds them
up: the main process makes an empty directory and names it in ``PROMETHEUS_MULTIPROC_DIR``
before it spawns the workers; each worker's values live in memory-mapped files there, and
the main process's endpoint (``api_endpoint``) reads every worker's files at each scrape.
Workers move their ``tally`` into those values once a second (``ApiMetrics.publish``).

The projector (``cqrs-demo project``) is one process: its endpoint (``projector_endpoint``)
reads each projection's status from the database at each scrape.
"""

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from cqrs_demo.metrics import tally
from cqrs_demo.ports import ProjectionStatus

log = logging.getLogger("cqrs_demo.metrics")

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
STATUS_TIMEOUT_SECONDS = 5.0


class ApiMetrics:
    """A worker's metrics, written to the multiprocess directory (``api_endpoint``)."""

    def __init__(self) -> None:
        if MULTIPROCESS_VARIABLE not in os.environ:
            # Without it the values would stay in this process, unseen by the endpoint.
            raise RuntimeError(f"{MULTIPROCESS_VARIABLE} is not set in this worker")
        self.requests = Counter(
            "cqrs_http_requests",
            "HTTP requests answered, by route template and status",
            ["route", "status"],
            registry=None,
        )
        self.request_seconds = Histogram(
            "cqrs_http_request_duration_seconds",
            "Seconds from a request's start to its answer, by route template and status",
            ["route", "status"],
            buckets=tally.SECONDS_BOUNDS,
            registry=None,
        )
        self.events_appended = Counter(
            "cqrs_events_appended", "Events appended to the event store", registry=None
        )
        self.refused = Counter(
            "cqrs_commands_refused",
            "Commands refused, by reason (validation, conflict, idempotency, decision,"
            " unauthorized)",
            ["reason"],
            registry=None,
        )
        self.batch_size = Histogram(
            "cqrs_group_commit_batch_size",
            "Commands per statement the event store wrote (1: alone)",
            buckets=tally.BATCH_BOUNDS,
            registry=None,
        )
        self.keys_pruned = Counter(
            "cqrs_idempotency_keys_pruned", "Expired idempotency keys removed", registry=None
        )
        self.unreachable = Counter(
            "cqrs_store_unreachable_seconds",
            "Seconds the event store was known unreachable (sampled every second)",
            registry=None,
        )
        self.pool = {
            name: Gauge(
                f"cqrs_pool_{name}",
                summary,
                ["pool"],
                multiprocess_mode="livesum",
                registry=None,
            )
            for name, summary in _POOL_GAUGES.items()
        }

    def publish(
        self,
        counts: tally.Counts,
        pools: Mapping[str, Mapping[str, int]],
        unreachable_seconds: float,
    ) -> None:
        """Add ``counts`` (``Tally.take``) to the values; set the pools' gauges from
        ``pools`` (by label, ``write`` and ``read``: psycopg_pool's ``get_stats`` of each);
        add ``unreachable_seconds``."""
        for (route, status), seconds in counts.requests.items():
            labels = {"route": route, "status": str(status)}
            self.requests.labels(**labels).inc(seconds.count)
            add_observations(self.request_seconds.labels(**labels), seconds)
        for reason, refused in counts.refused.items():
            self.refused.labels(reason=reason).inc(refused)
        if counts.events_appended:
            self.events_appended.inc(counts.events_appended)
        add_observations(self.batch_size, counts.batches)
        if counts.keys_pruned:
            self.keys_pruned.inc(counts.keys_pruned)
        if unreachable_seconds:
            self.unreachable.inc(unreachable_seconds)
        for label, stats in pools.items():
            size = stats.get("pool_size", 0)
            self.pool["connections"].labels(pool=label).set(size)
            in_use = size - stats.get("pool_available", 0)
            self.pool["connections_in_use"].labels(pool=label).set(in_use)
            self.pool["requests_waiting"].labels(pool=label).set(stats.get("requests_waiting", 0))


_POOL_GAUGES = {
    "connections": "Connections the pools hold, summed over the workers",
    "connections_in_use": "Connections lent to a request or a batch, summed over the workers",
    "requests_waiting": "Requests waiting for a connection, summed over the workers",
}


def add_observations(histogram: Histogram, counts: tally.Histogram) -> None:
    """Add ``counts`` to a (labelled) histogram of the library in one step per bucket.

    ``Histogram.observe`` takes one value at a time, a lock and a write to a memory-mapped
    file for each; this adds to its per-bucket values (``_buckets``, not cumulative: the
    library sums them when it exposes them) and ``_sum`` directly. Internals of
    ``prometheus_client``: ``tests/unit/test_metrics.py`` checks that the exposition is
    the one ``observe`` would give."""
    for value, count in zip(histogram._buckets, counts.buckets, strict=True):
        if count:
            value.inc(count)
    if counts.total:
        histogram._sum.inc(counts.total)


@contextmanager
def api_endpoint(host: str, port: int) -> Iterator[None]:
    """For the main process of ``cqrs-demo serve``, around the workers' lives: an empty
    multiprocess directory named in the environment (the workers, spawned inside, inherit
    it), and the endpoint on ``host:port`` adding up every worker's values. Raises
    ``OSError`` naming the address when the port cannot be bound. The directory is removed
    at the end."""
    directory = tempfile.mkdtemp(prefix="cqrs-demo-metrics-")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    try:
        server = _listen(host, port, registry)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    os.environ[MULTIPROCESS_VARIABLE] = directory
    try:
        yield
    finally:
        server()
        os.environ.pop(MULTIPROCESS_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


class ProjectionCollector(Collector):
    """Each projection's position, lag and state, read from the database at each scrape
    (on the projector's event loop, ``STATUS_TIMEOUT_SECONDS`` at most)."""

    def __init__(
        self,
        status: Callable[[], Awaitable[Sequence[ProjectionStatus]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._status = status
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        statuses = self._read()
        read = GaugeMetricFamily(
            "cqrs_projector_status_read",
            "1 if this scrape read the projections' status, 0 if the database did not answer",
            value=0 if statuses is None else 1,
        )
        yield read
        if statuses is None:
            return
        families = {
            name: GaugeMetricFamily(f"cqrs_projection_{name}", summary, labels=["projection"])
            for name, summary in _PROJECTION_GAUGES.items()
        }
        for status in statuses:
            values = projection_values(status)
            for name, family in families.items():
                family.add_metric([status.projection], values[name])
        yield from families.values()

    def _read(self) -> Sequence[ProjectionStatus] | None:
        future = asyncio.run_coroutine_threadsafe(_awaited(self._status), self._loop)
        try:
            return future.result(STATUS_TIMEOUT_SECONDS)
        except FutureTimeout:
            future.cancel()
            log.warning("metrics: no projection status within %.0f s", STATUS_TIMEOUT_SECONDS)
        except Exception as error:  # the store's errors: the scrape still answers
            log.warning("metrics: cannot read the projections' status: %s", error)
        return None


_PROJECTION_GAUGES = {
    "position_transaction": "The checkpoint's position: the transaction id of its last event",
    "position_event": "The checkpoint's position: the row id of its last event",
    "events_applied": "Events the projection has applied since it started from the first",
    "events_behind": "Events in the feed after the checkpoint",
    "seconds_behind": "Age of the oldest event after the checkpoint (0: caught up)",
    "stopped": "1 if the projection stopped at an event it cannot apply, else 0",
}


def projection_values(status: ProjectionStatus) -> dict[str, float]:
    """The gauges of one projection's status (``_PROJECTION_GAUGES``)."""
    checkpoint = status.checkpoint
    return {
        "position_transaction": float(checkpoint.position.transaction_id),
        "position_event": float(checkpoint.position.event_number),
        "events_applied": float(checkpoint.events_applied),
        "events_behind": float(status.events_behind),
        "seconds_behind": status.seconds_behind,
        "stopped": 1.0 if checkpoint.state == "stopped" else 0.0,
    }


async def _awaited(
    status: Callable[[], Awaitable[Sequence[ProjectionStatus]]],
) -> Sequence[ProjectionStatus]:
    return await status()


def projector_endpoint(host: str, port: int, collector: Collector) -> Callable[[], None]:
    """The projector's endpoint on ``host:port``; returns the function that closes it.
    Raises ``OSError`` naming the address when the port cannot be bound."""
    registry = CollectorRegistry()
    registry.register(collector)
    return _listen(host, port, registry)


def _listen(host: str, port: int, registry: CollectorRegistry) -> Callable[[], None]:
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as error:
        raise OSError(
            error.errno, f"cannot listen for metrics on {host}:{port}: {error.strerror}"
        ) from None

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    log.info("metrics on http://%s:%d/metrics", host, port)
    return close
