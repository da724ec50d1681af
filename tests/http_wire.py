"""HTTP/1.1 on the wire, for tests of what a client can send that httpx will not: pipelined
requests, garbage, heads split anywhere, connections that say nothing."""

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length: *(\d+)\r$")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as read from the socket."""

    status: int
    head: str
    body: bytes

    def header(self, name: str) -> str | None:
        match = re.search(rf"(?im)^{re.escape(name)}: *(.*?)\r$", self.head)
        return None if match is None else match[1]

    def problem(self) -> dict[str, object]:
        """The body of a problem+json answer (asserts that it is one)."""
        assert self.header("content-type") == "application/problem+json", self.head
        document = json.loads(self.body)
        assert isinstance(document, dict)
        assert document["status"] == self.status
        return document


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def parse_answers(data: bytes) -> list[Answer]:
    """Every whole answer in ``data``, in order (each with a Content-Length)."""
    answers = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        match = _CONTENT_LENGTH.search(head + b"\r")
        length = int(match[1]) if match else 0
        if len(rest) < length:
            break
        status = int(head.split(b" ", 2)[1])
        answers.append(Answer(status, head.decode("latin-1") + "\r", rest[:length]))
        data = rest[length:]
    return answers


def read_until_closed(conn: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (at most ``timeout`` s;
    a reset ends the reading like a close)."""
    conn.settimeout(timeout)
    deadline = time.monotonic() + timeout
    received = b""
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received


def exchange(url: str, *pieces: bytes, pause: float = 0.0, timeout: float = 10) -> list[Answer]:
    """Send ``pieces`` on one connection (``pause`` seconds apart), then read every answer
    until the server closes the connection."""
    with socket.create_connection(address(url), timeout=timeout) as conn:
        for number, piece in enumerate(pieces):
            if number and pause:
                time.sleep(pause)
            conn.sendall(piece)
        return parse_answers(read_until_closed(conn, timeout))


def get(url: str, path: str, timeout: float = 5) -> Answer:
    """``GET path`` on a new connection that asks to be closed after it."""
    request = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    answers = exchange(url, request, timeout=timeout)
    assert len(answers) == 1, answers
    return answers[0]


def head_of(size: int, path: bytes = b"/healthz") -> bytes:
    """A GET (closing its connection) whose head, blank line included, is ``size`` bytes."""
    start = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Pad: " % path
    padding = size - len(start) - len(b"\r\n\r\n")
    return start + b"a" * padding + b"\r\n\r\n"


@contextmanager
def idle_connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send nothing, closed on leaving."""
    with ExitStack() as stack:
        connections = []
        for _ in range(count):
            conn = stack.enter_context(socket.create_connection(address(url), timeout=10))
            connections.append(conn)
        yield connections


def closed_by_server(conn: socket.socket) -> bool:
    """Whether the server has closed ``conn`` (without waiting)."""
    conn.setblocking(False)
    try:
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        conn.setblocking(True)


def probes_during_a_huge_head(
    url: str, megabytes: int, probes: int = 5
) -> tuple[list[float], bytes]:
    """Send a head of ``megabytes`` MB that never ends, from a thread; meanwhile time
    ``probes`` GETs of /healthz on connections of their own (each must answer 200). Returns
    the probes' seconds and what the huge head's connection received."""
    received: list[bytes] = [b""]

    def send() -> None:
        with socket.create_connection(address(url)) as conn:
            try:
                conn.sendall(b"GET / HTTP/1.1\r\nX-Pad: ")
                chunk = b"a" * (1 << 20)
                for _ in range(megabytes):
                    conn.sendall(chunk)
            except OSError:
                pass  # the server closed the connection once it had refused the head
            received[0] = read_until_closed(conn, 5)

    sender = threading.Thread(target=send)
    sender.start()
    seconds = []
    for _ in range(probes):
        started = time.monotonic()
        assert get(url, "/healthz").status == 200
        seconds.append(time.monotonic() - started)
    sender.join(30)
    assert not sender.is_alive(), "the huge head was still being sent after 30 s"
    return seconds, received[0]
