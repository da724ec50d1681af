"""Watches the cluster from inside its network namespace while a drill runs.

    nsenter --net=/run/netns/NS python -m tests.deploy.cluster_watch OUT HOST=ADDRESS ...

Every ``POLL_SECONDS``, one thread per host asks its Patroni whether it is the primary
(``GET :8008/primary``: 200 once its PostgreSQL is promoted and it holds the leader key)
and its API how far the projections are (``GET :8080/api/projections``: the smallest
``events_applied``). Each change is one JSON line in OUT: ``{"t", "host", "primary"}`` or
``{"t", "host", "applied"}`` (wall-clock seconds). Stops when OUT.stop appears.
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.1
ASK_TIMEOUT = 0.5


def ask(url: str) -> tuple[int, Any]:
    """The status (0: no answer) and the JSON body of GET ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=ASK_TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except (OSError, ValueError):
        return 0, None


def watch(host: str, address: str, out: Path, lock: threading.Lock) -> None:
    stop = out.with_suffix(".stop")
    last: dict[str, object] = {}
    while not stop.exists():
        status, _ = ask(f"http://{address}:8008/primary")
        states: dict[str, object] = {"primary": status == 200}
        status, body = ask(f"http://{address}:8080/api/projections")
        if status == 200 and isinstance(body, dict):
            states["applied"] = min(p["events_applied"] for p in body["projections"])
        now = time.time()
        for key, value in states.items():
            if last.get(key) != value:
                last[key] = value
                with lock, out.open("a") as output:
                    output.write(json.dumps({"t": now, "host": host, key: value}) + "\n")
        time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    lock = threading.Lock()
    threads = [
        threading.Thread(target=watch, args=(*pair.split("=", 1), out, lock)) for pair in argv[1:]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
