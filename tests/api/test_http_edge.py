"""The HTTP edge, tried as an attacker and a careless client would: pipelining, garbage,
oversized and slow heads, idle crowds. Every refusal is a problem+json answer that follows
the answers to the requests before it, and nothing is written for a refused request.

A service of its own with small limits (16 connections a worker, heads of 4,096 bytes within
1 s) keeps the tests short; the deployment tests try the real unit's limits.
"""

import os
import re
import resource
import select
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from cqrs_demo.localdb import LocalPostgres
from tests.http_wire import (
    address,
    closed_by_server,
    exchange,
    get,
    head_of,
    idle_connections,
    parse_answers,
    probes_during_a_huge_head,
    read_until_closed,
)
from tests.support import Service, new_database, require, running_service

CREATE = "/api/commands/order/create"
HEAD_LIMIT = 4096
HEAD_SECONDS = 1.0
MAX_CONNECTIONS = 16


def post(user: str, *, extra: bytes = b"") -> bytes:
    body = b'{"user_id":"%s","product_id":"p","quantity":1,"total_price":1}' % user.encode()
    return (
        b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (CREATE.encode(), len(body), extra, body)
    )


@pytest.fixture(scope="module")
def edge_database(postgres: LocalPostgres) -> str:
    return new_database(postgres, f"cqrs_edge_{os.getpid()}")


@pytest.fixture(scope="module")
def edge(edge_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(
        edge_database,
        tmp_path_factory.mktemp("edge"),
        CQRS_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        CQRS_HEAD_LIMIT=str(HEAD_LIMIT),
        CQRS_HEAD_TIMEOUT=str(HEAD_SECONDS),
    ) as service:
        yield service


def rows(database_url: str, user: str | None = None) -> int:
    """Rows in ``events``: of ``user``'s stream, or all of them."""
    with psycopg.connect(database_url) as conn:
        if user is None:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        else:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE aggregate_id = %s", [user]
            ).fetchone()
    assert row is not None
    return int(row[0])


# -- Answers in order -------------------------------------------------------------------


def test_a_command_followed_by_garbage_gets_its_202_before_the_400(
    edge: Service, edge_database: str
) -> None:
    user = f"pipe_{uuid.uuid4().hex[:12]}"
    answers = exchange(edge.url, post(user) + b"GARBAGE\r\n\r\n")
    assert [answer.status for answer in answers] == [202, 400]
    assert answers[1].problem()["detail"] == "malformed HTTP request: Invalid method encountered"
    assert answers[1].header("connection") == "close"
    assert rows(edge_database, user) == 1


def test_pipelined_commands_are_answered_in_order_before_the_refusal(
    edge: Service, edge_database: str
) -> None:
    user = f"pipe_{uuid.uuid4().hex[:12]}"
    answers = exchange(edge.url, post(user) + post(user) + b"\x16\x03\x01\x02\x00\x01\x00")
    assert [answer.status for answer in answers] == [202, 202, 400]
    assert [answer.header("etag") for answer in answers[:2]] == ['"1"', '"2"']
    assert rows(edge_database, user) == 2


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GARBAGE\r\n\r\n", "Invalid method encountered"),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", "Invalid header token"),
        (b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n", "Invalid char in url path"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", None),
        (b"POST %s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" % CREATE.encode(), None),
    ],
    ids=[
        "request line",
        "header token",
        "URL character",
        "two lengths",
        "chunk size",
        "chunk size of a command",
    ],
)
def test_a_malformed_request_is_a_problem_not_plain_text(
    edge: Service, request_bytes: bytes, reason: str | None
) -> None:
    answers = exchange(edge.url, request_bytes)
    # A request whose own body is malformed gets the refusal as its one answer.
    assert [answer.status for answer in answers] == [400]
    detail = str(answers[-1].problem()["detail"])
    assert detail.startswith("malformed HTTP request: ")
    if reason is not None:
        assert detail == f"malformed HTTP request: {reason}"


# -- Head size --------------------------------------------------------------------------


def test_a_head_of_exactly_the_limit_is_served_one_byte_more_is_a_431(edge: Service) -> None:
    assert [answer.status for answer in exchange(edge.url, head_of(HEAD_LIMIT))] == [200]
    answers = exchange(edge.url, head_of(HEAD_LIMIT + 1))
    assert [answer.status for answer in answers] == [431]
    assert answers[0].problem()["detail"] == (
        f"the request head (request line and headers) is larger than {HEAD_LIMIT} bytes"
    )


@pytest.mark.parametrize("piece", [1, 7, 1000, HEAD_LIMIT, HEAD_LIMIT + 1, 1 << 16])
def test_the_head_limit_holds_however_the_head_is_split(edge: Service, piece: int) -> None:
    for size, status in ((HEAD_LIMIT, 200), (HEAD_LIMIT + 1, 431)):
        head = head_of(size)
        pieces = [head[start : start + piece] for start in range(0, len(head), piece)]
        answers = exchange(edge.url, *pieces)
        assert [answer.status for answer in answers] == [status], (size, piece)


def test_a_head_past_the_limit_is_refused_before_it_ends(edge: Service) -> None:
    """The 431 comes as soon as the byte past the limit is in, not at the head's end (which
    never comes here) nor at the head timeout."""
    with socket.create_connection(address(edge.url)) as conn:
        started = time.monotonic()
        conn.sendall(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * HEAD_LIMIT)
        answers = parse_answers(read_until_closed(conn, 5))
        took = time.monotonic() - started
    assert [answer.status for answer in answers] == [431]
    # Not the head timeout's 408: the limit was seen first. The 431 needs one local round
    # trip (milliseconds); a second is the timeout itself, far above a loaded machine's delay.
    assert took < HEAD_SECONDS


def worker_memory_kib(service: Service) -> int:
    total = 0
    for pid in service.worker_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])  # type: ignore[index]
    return total


def test_a_64_mb_head_costs_the_workers_no_memory_and_others_no_time(edge: Service) -> None:
    before = worker_memory_kib(edge)
    served_in, received = probes_during_a_huge_head(edge.url, 64)
    grown = worker_memory_kib(edge) - before
    # Unbounded, the head was held whole (about 95 MB for 32 MB sent) and parsing it stalled
    # the worker for seconds; refused at 4 KiB, it is read and dropped in 64 KiB reads.
    assert grown < 16 * 1024, f"the workers grew by {grown} KiB"
    # Generous for a loaded 2-core machine; the stall it guards against was 5 s or more.
    assert max(served_in) < 1.0, served_in
    # The client may not read the 431: its unread megabytes can make the close a reset.
    assert not received or parse_answers(received)[0].status == 431


def test_a_long_url_is_a_414(edge: Service) -> None:
    url_limit = HEAD_LIMIT // 2  # 8 KiB, or half the head limit if that is less
    assert get(edge.url, "/" + "a" * (url_limit - 1)).status == 404
    assert get(edge.url, "/" + "a" * url_limit).status == 414
    answers = exchange(edge.url, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [answer.status for answer in answers] == [414]
    assert answers[0].problem()["detail"] == f"the URL is longer than {url_limit} bytes"


# -- Head time --------------------------------------------------------------------------


def test_a_head_not_complete_in_time_is_a_408(edge: Service) -> None:
    with socket.create_connection(address(edge.url)) as conn:
        started = time.monotonic()
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        answers = parse_answers(read_until_closed(conn, HEAD_SECONDS + 5))
        took = time.monotonic() - started
    assert [answer.status for answer in answers] == [408]
    assert answers[0].problem()["detail"] == (
        f"the request head was not received within {HEAD_SECONDS:g} s"
    )
    assert took >= HEAD_SECONDS * 0.9  # a lower bound: load only makes it later


def test_a_slow_head_on_a_kept_alive_connection_is_a_408(edge: Service) -> None:
    with socket.create_connection(address(edge.url)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(HEAD_SECONDS * 1.5)  # idle between requests: the keep-alive time counts
        conn.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(HEAD_SECONDS * 0.5)
        conn.sendall(b"Ho")
        answers = parse_answers(read_until_closed(conn, HEAD_SECONDS + 5))
    assert [answer.status for answer in answers] == [200, 408]


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(edge: Service) -> None:
    with socket.create_connection(address(edge.url)) as conn:
        started = time.monotonic()
        received = read_until_closed(conn, HEAD_SECONDS + 5)
        took = time.monotonic() - started
    assert received == b""
    # Ended by the sweep (every quarter of the timeout) after the timeout; the upper bound
    # only catches a connection never closed, with seconds to spare for a loaded machine.
    assert HEAD_SECONDS * 0.9 <= took < HEAD_SECONDS + 5
    edge.wait_for_log(r"closed a connection from \S+ that sent nothing for 1 s")


# -- Connection limit -------------------------------------------------------------------


def test_an_idle_crowd_does_not_take_the_service_offline(edge: Service) -> None:
    crowd = 10 * MAX_CONNECTIONS  # five times what the two workers hold
    with idle_connections(edge.url, crowd) as connections:
        for _ in range(5):
            assert get(edge.url, "/healthz").status == 200
        assert get(edge.url, "/readyz").status == 200
        line = edge.wait_for_log(f".*at the limit of {MAX_CONNECTIONS} connections.*")[0]
        assert "waiting the longest without a request" in line
        # The oldest were closed to make room: at least all but what the workers hold.
        closed = sum(closed_by_server(conn) for conn in connections)
        assert closed >= crowd - 2 * MAX_CONNECTIONS


def test_with_every_connection_busy_a_newcomer_gets_a_503(edge: Service) -> None:
    """Connections whose request is in flight (a body that does not come) are not closed to
    make room: past the limit the newcomer is told to retry."""
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" % CREATE.encode()
    busy_request = head + b"Content-Length: 10\r\n\r\n"
    with ExitStack() as connections:
        refused = None
        opened: list[socket.socket] = []
        for _ in range(10 * MAX_CONNECTIONS):
            conn = connections.enter_context(socket.create_connection(address(edge.url)))
            conn.sendall(busy_request)
            opened.append(conn)
            # An answer at once is the refusal; a request in flight waits for its body (10 s).
            answered, _, _ = select.select(opened, [], [], 0.1)
            if answered:
                refused = answered[0]
                break
        if refused is None:  # a busy machine may answer later than 0.1 s: wait for it
            answered, _, _ = select.select(opened, [], [], 5)
            refused = answered[0] if answered else None
        assert refused is not None, "no connection was refused"
        refusal = parse_answers(read_until_closed(refused, 2))
        assert [answer.status for answer in refusal] == [503]
        assert refusal[0].header("retry-after") == "1"
        assert refusal[0].problem()["detail"] == (
            f"the server is at its limit of {MAX_CONNECTIONS} connections, each with a"
            " request in flight; retry shortly"
        )
    edge.wait_for_log(f"503 to \\S+: the server is at its limit of {MAX_CONNECTIONS}")
    assert get(edge.url, "/healthz").status == 200  # the busy ones are gone: served again


def test_1100_idle_connections_under_1024_open_files_leave_it_serving(
    edge_database: str, tmp_path: Path
) -> None:
    """The reproduction: systemd's default soft limit, 1,100 connections that say nothing,
    then a probe. The worker keeps its connections within what the limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    require(hard >= 1300, "an open-file hard limit of 1,300 or more (for the test's sockets)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    with running_service(edge_database, tmp_path, open_files=1024, CQRS_WORKERS="1") as service:
        budget = 1024 - 25 - 64  # less the pool's 25 and the files every worker keeps
        line = service.wait_for_log(".*the open-file limit of 1024 allows.*")[0]
        assert f"allows {budget} client connections per worker" in line
        with idle_connections(service.url, 1100):
            for _ in range(3):
                assert get(service.url, "/healthz").status == 200
            service.wait_for_log(f"at the limit of {budget} connections")
        assert "Too many open files" not in service.log()


# -- Stopping ---------------------------------------------------------------------------


def test_a_stop_is_clean_and_says_so(edge_database: str, tmp_path: Path) -> None:
    with running_service(edge_database, tmp_path) as service:
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(30) == 0
        log = service.log()
    assert log.count("Application shutdown complete.") == 2
    assert log.count("worker stopped: in-flight requests answered, pool closed") == 2
    assert re.search(r"stopped; workers' exit codes: worker-\d 0, worker-\d 0", log), log
