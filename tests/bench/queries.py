"""``--queries``: requests/s of each query endpoint under wrk, beside the same SELECT run by
pgbench (what PostgreSQL alone answers at the same concurrency).

The read models come from the history of ``read_history`` (inserted with SQL, projected by
``cqrs-demo projections rebuild``), so that every user has orders and a summary. wrk goes
round paths of random users and orders of that history (query_paths.lua); every answer must
be a 200, and nothing may be written. pgbench runs the service's own statement
(store/queries/*.sql) with the ids computed the way the history made them and the
parameters the endpoint passes.
"""

import hashlib
import random
import re
import subprocess
from pathlib import Path

from cqrs_demo.localdb import find_bindir
from tests.bench.audit import Audit
from tests.bench.load import LoadResult, wrk_threads
from tests.bench.postgres import Database
from tests.bench.read_history import STEPS
from tests.bench.runs import Workload, new_nonce

LUA = Path(__file__).with_name("query_paths.lua")
QUERIES = Path(__file__).resolve().parents[2] / "service/cqrs_demo/store/queries"
PATHS_PER_THREAD = 20_000
ORDERS_PAGE = 20  # the user's orders page the benchmark asks for (?limit=)

# endpoint: (the path of user u and step s, its statement, its parameters in pgbench terms)
_USER = "('u-' || substr(md5(:u::text), 1, 8) || '-read-' || :u)"
_ORDER = (
    "((lpad(to_hex(:u::int), 12, '0') || '7019' || lpad(to_hex(:s::int), 16, '0'))::uuid::text)"
)
ENDPOINTS = {
    "order": (
        "/api/queries/orders/{order}",
        "read_order",
        {"projection": "'orders'", "order_id": _ORDER},
    ),
    "user orders": (
        f"/api/queries/users/{{user}}/orders?limit={ORDERS_PAGE}",
        "read_user_orders",
        {
            "projection": "'orders'",
            "user_id": _USER,
            "after_placed_at": "NULL",
            "after_order_id": "NULL",
            "fetch": str(ORDERS_PAGE + 1),
        },
    ),
    "summary": (
        "/api/queries/users/{user}/summary",
        "read_user_summary",
        {"projection": "'user_order_summaries'", "user_id": _USER},
    ),
}


def user_id(number: int) -> str:
    """The id ``read_history`` gave user ``number`` (md5 as PostgreSQL computes it)."""
    return f"u-{hashlib.md5(str(number).encode()).hexdigest()[:8]}-read-{number}"


def order_id(user: int, step: int) -> str:
    hexed = f"{user:012x}7019{step:016x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def workload(endpoint: str, users: int, workdir: Path, connections: int) -> Workload:
    """Paths of ``endpoint`` for random users (and steps that placed an order)."""
    template = ENDPOINTS[endpoint][0]
    prefix = workdir / f"paths-{new_nonce()}"
    chooser = random.Random(7)
    for thread in range(wrk_threads(connections)):
        lines = []
        for _ in range(PATHS_PER_THREAD):
            user, step = chooser.randrange(users), chooser.randrange(STEPS)
            step -= 1 if step % 5 == 4 else 0  # a step that placed an order
            lines.append(template.format(user=user_id(user), order=order_id(user, step)) + "\n")
        Path(f"{prefix}.{thread}").write_text("".join(lines))
    return Workload(LUA, (str(prefix),), _audit)


def _audit(nonce: str, load: LoadResult, database: Database, high_water: int) -> Audit:
    """Only 200s, and nothing written."""
    rows = database.scalar("SELECT count(*) FROM events WHERE id > %s", high_water)
    audit = Audit(rows=rows, acked=load.responses)
    if load.statuses:
        answers = ", ".join(f"{n} x {status}" for status, n in sorted(load.statuses.items()))
        audit.problems.append(f"answers other than 200: {answers}")
    if load.socket_errors:
        audit.problems.append(f"socket errors: {load.socket_errors}")
    if rows:
        audit.problems.append(f"{rows} events written during a query run")
    audit.detail = "every answer a 200 (acknowledged: answers)"
    return audit


def pgbench_script(endpoint: str, users: int, path: Path) -> Path:
    """The endpoint's statement for pgbench, for a random user (and order) of the history."""
    _, statement, parameters = ENDPOINTS[endpoint]
    sql = (QUERIES / f"{statement}.sql").read_text()
    sql = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    for name, value in parameters.items():
        sql = re.sub(rf"%\({name}\)s", value, sql)
    assert "%(" not in sql, f"a parameter of {statement} has no value: {sql}"
    lines = [
        f"\\set u random(0, {users - 1})",
        f"\\set s random(0, {STEPS // 5 - 1}) * 5 + random(0, 3)",
        " ".join(sql.split()) + ";",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_pgbench_select(dsn: str, script: Path, *, clients: int, seconds: float) -> float:
    """Transactions (statements) per second of ``script``, read-only."""
    pgbench = str(find_bindir() / "pgbench")
    command = [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2"]
    command += ["-T", str(max(1, int(seconds))), "-f", str(script), dsn]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in result.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise RuntimeError(f"pgbench failed ({result.returncode}): {result.stderr[-2000:]}")
