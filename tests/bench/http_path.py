"""CPU per command of the HTTP and API path: the service's app and HTTP protocol on
uvicorn, over loopback, driven by wrk, with a store that answers at once (no database).

What ``api_path`` measures in a tight loop, here between socket reads and writes, as in a
worker under load: code that looks cheap in-process can cost several times more when each
request's work is interleaved with the event loop's (the access-log line: 4 µs in-process,
about 14 over HTTP). Prints the server process's CPU per request for each ``--variant``,
alternated ``--rounds`` times:

- ``info``: as the service runs (access log at INFO, in the journal's format, to a file);
- ``warning``: the same with the log level at WARNING (no access-log line);
- ``unguarded``: as ``info``, on the protocol without the HTTP edge's limits
  (``http_edge``): what the limits cost;
- ``trivial``: a bare ASGI app answering 202 on the same uvicorn and protocol (the floor).

    .venv/bin/python -m tests.bench.http_path [--variants info,warning,trivial]
"""

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvicorn
import uvloop
from starlette.types import ASGIApp, Receive, Scope, Send

from cqrs_demo.api.app import build_app
from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules
from cqrs_demo.http_edge import Edge, EdgeLimits, EdgeProtocol
from cqrs_demo.http_protocol import CoalescingHttpToolsProtocol
from cqrs_demo.localdb import free_port
from cqrs_demo.logs import configure_logging
from tests.bench.api_path import AnswersAtOnce, always_ready

SCRIPT = Path(__file__).with_name("create_order.lua")
VARIANTS = ("info", "warning", "unguarded", "trivial")


async def _trivial(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def serve(variant: str, port: int) -> None:
    """The server (a child process): prints ``ready`` once it accepts connections."""
    os.environ["JOURNAL_STREAM"] = "0:0"
    configure_logging("warning" if variant == "warning" else "info")
    app: ASGIApp = _trivial
    if variant != "trivial":
        app = build_app(
            store=AnswersAtOnce(),
            check_ready=always_ready,
            tokens=BearerTokens(()),
            body=BodyRules(limit=65_536, seconds=10.0),
        )
    limits = EdgeLimits(max_connections=4096, head_bytes=16_384, url_bytes=8192, head_seconds=10)
    protocol = CoalescingHttpToolsProtocol
    if variant != "unguarded":
        protocol = EdgeProtocol.serving(Edge(limits))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        lifespan="off",
        http=protocol,
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        gc.freeze()  # as a worker does
        print("ready", flush=True)
        await serving

    uvloop.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(variant: str, connections: int, seconds: float, workdir: Path) -> tuple[float, int]:
    """(µs of the server's CPU per request, requests/s) for one run."""
    port = free_port()
    command = [sys.executable, "-m", "tests.bench.http_path", "--serve", variant, str(port)]
    with (workdir / "server.log").open("ab") as log:
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the {variant} server did not start (see {workdir}/server.log)")
        url = f"http://127.0.0.1:{port}/"
        wrk = ["wrk", "-t2", f"-c{connections}", "-s", str(SCRIPT), url]
        acks = str(workdir / "acks")
        subprocess.run([*wrk, "-d2s", "--", "warmup", acks], check=True, capture_output=True)
        before = _cpu_seconds(server.pid)
        output = subprocess.run(
            [*wrk, f"-d{seconds:g}s", "--", f"{variant}{time.time_ns()}", acks],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        cpu = _cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait()
    result = next(line for line in output.splitlines() if line.startswith("RESULT "))
    fields = dict(item.split("=") for item in result.split()[1:])
    requests = int(fields["requests"])
    errors = sum(int(fields[name]) for name in ("connect", "read", "write", "timeout"))
    if errors or "STATUS " in output:
        raise SystemExit(f"the {variant} run had errors:\n{output}")
    return cpu / requests * 1e6, round(requests / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve[0], int(options.serve[1]))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk; tests/bench/run installs it)")
    variants = options.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="http-path-") as directory:
        for round_number in range(1, options.rounds + 1):
            for variant in variants:
                cpu, rate = measure(variant, options.connections, options.seconds, Path(directory))
                print(
                    f"round {round_number} {variant}: {cpu:.1f} us CPU per request"
                    f" ({rate:,} requests/s, wrk -c{options.connections})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
