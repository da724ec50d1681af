"""A bounded command load on the cluster's APIs, run inside the cluster's network namespace.

    nsenter --net=/run/netns/NS python -m tests.deploy.cluster_load OUT PREFIX URL [URL ...]

Each of a few workers sends create-order commands one at a time, each for a user of its
own (PREFIX-WORKER-SERIAL), the first try to the next API in turn (round robin). A try that
gets no answer, a 5xx or a 409 (the same key still in flight) is sent again with the same
``Idempotency-Key`` to the next API, until it is answered 202 or ``GIVE_UP_SECONDS`` pass.
An API that gave no answer at all (its host is down) is passed over by every worker for
``DOWN_SECONDS``, as a load balancer's health check would, unless every API is: without
that, each worker spent ``TRY_TIMEOUT`` on the dead host every third try, and the first
202 after a failover measured the clients more than the service.
Each command's outcome goes to OUT as one JSON line as soon as it is known: the user, the
key, ``acked`` (202 or not), the wall-clock times its last try was sent and answered and
its first failed try was answered, how many tries it took and the answers of the last
failed ones. The load stops when the file OUT.stop appears (a command in progress is
finished first) or after ``MAX_SECONDS``.
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from itertools import count
from pathlib import Path
from typing import Any

WORKERS = 3
PAUSE_SECONDS = 0.05  # between two commands of one worker: a bounded load
TRY_TIMEOUT = 5.0
RETRY_PAUSE = 0.2
GIVE_UP_SECONDS = 90.0
DOWN_SECONDS = 30.0
MAX_SECONDS = 900.0
ORDER = {"product_id": "prod_456", "quantity": 1, "total_price": 10.0}


def post(url: str, body: bytes, key: str) -> tuple[int, dict[str, Any] | str]:
    """One try: the status (0 when no answer came) and the JSON body or the error."""
    request = urllib.request.Request(
        f"{url}/api/commands/order/create",
        data=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TRY_TIMEOUT) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return response.status, answer
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")[:200]
    except OSError as error:
        return 0, f"{type(error).__name__}: {error}"


# When each API last gave no answer at all, shared by the workers.
DOWN: dict[str, float] = {}


def next_url(urls: list[str], turn: "count[int]") -> str:
    """The next API in turn that has not been found down within ``DOWN_SECONDS``."""
    now = time.time()
    for _ in urls:
        url = urls[next(turn) % len(urls)]
        if now - DOWN.get(url, 0.0) > DOWN_SECONDS:
            return url
    return url  # every one is down: try them anyway


def send(urls: list[str], turn: "count[int]", user_id: str) -> dict[str, Any]:
    """Send one command until 202 or the deadline; return its record."""
    key = str(uuid.uuid4())
    body = json.dumps({"user_id": user_id, **ORDER}).encode()
    first = time.time()
    failures: list[str] = []
    first_failure: float | None = None
    while True:
        url = next_url(urls, turn)
        sent = time.time()
        status, answer = post(url, body, key)
        answered = time.time()
        if status == 0:
            DOWN[url] = answered
        if status == 202 and isinstance(answer, dict):
            return {
                "user_id": user_id,
                "key": key,
                "acked": True,
                "aggregate_id": answer["aggregate_id"],
                "version": answer["version"],
                "event_id": answer["event_ids"][-1],
                "position": answer.get("position"),
                "url": url,
                "first": first,
                "sent": sent,
                "answered": answered,
                "tries": len(failures) + 1,
                "first_failure": first_failure,
                "failures": failures[-5:],
            }
        first_failure = answered if first_failure is None else first_failure
        failures.append(f"{url} {status} {answer}"[:300])
        if answered - first > GIVE_UP_SECONDS:
            return {
                "user_id": user_id,
                "key": key,
                "acked": False,
                "first": first,
                "sent": sent,
                "answered": answered,
                "tries": len(failures),
                "first_failure": first_failure,
                "failures": failures[-5:],
            }
        time.sleep(RETRY_PAUSE)


def worker(number: int, urls: list[str], out: Path, lock: threading.Lock, prefix: str) -> None:
    stop = out.with_suffix(".stop")
    turn = count(number)
    deadline = time.monotonic() + MAX_SECONDS
    for serial in count():
        if stop.exists() or time.monotonic() > deadline:
            return
        record = send(urls, turn, f"{prefix}-{number}-{serial}")
        with lock, out.open("a") as output:
            output.write(json.dumps(record) + "\n")
        time.sleep(PAUSE_SECONDS)


def main(argv: list[str]) -> int:
    out, prefix, urls = Path(argv[0]), argv[1], argv[2:]
    lock = threading.Lock()
    threads = [
        threading.Thread(target=worker, args=(number, urls, out, lock, prefix))
        for number in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
