"""The audit after each run: every 202 is in the table once, at its version; nothing else is.

The rows a run wrote are those above the highest event id before it (ids only grow, and
nothing else writes during a run). A row belongs to a request by the user id in its
payload, which the load script made unique per request: u-RRRRRRRR-NONCE-THREAD-N.

- Each row must be from this run (its nonce), from a request that was sent (N at most the
  requests that thread wrote), once per user, at version 1 (every user is new).
- When the 202 bodies name the stream and version (ours do), each 202 must match one row
  exactly, stream and version. When they do not (the peer's), the 202s are counted.
- Rows with no 202 are the requests still in flight when wrk stopped (it does not wait for
  them) or those whose answer wrk counted as a socket error; at most one per connection
  plus one per such error. More than that is a problem.
"""

import re
from collections import Counter
from dataclasses import dataclass, field

from tests.bench.load import LoadResult


@dataclass(slots=True)
class Audit:
    rows: int = 0
    acked: int = 0
    in_flight: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED: " + "; ".join(self.problems[:5])
        return (
            f"audit {verdict} ({self.acked} acknowledged, {self.in_flight} stored without "
            f"an answer read, {self.rows} rows)"
        )


def audit_run(nonce: str, load: LoadResult, rows: list[tuple[str, str, int]]) -> Audit:
    """Check ``rows`` (payload user_id, aggregate_id, version) against what wrk saw."""
    audit = Audit(rows=len(rows), acked=len(load.acks))
    user_pattern = re.compile(rf"u-[0-9a-f]{{8}}-{re.escape(nonce)}-(\d+)-(\d+)")
    for user, stream, version in rows:
        match = user_pattern.fullmatch(user)
        if match is None:
            audit.problems.append(f"row not from this run: user {user!r}, stream {stream!r}")
        elif int(match[2]) > load.sent.get(int(match[1]), 0):
            audit.problems.append(f"row for a request never sent: {user!r}")
        if version != 1:
            audit.problems.append(f"stream {stream!r} at version {version}, expected 1")
    for user, count in Counter(user for user, _, _ in rows).items():
        if count > 1:
            audit.problems.append(f"user {user!r} stored {count} times")
    if all(ack.aggregate_id is not None for ack in load.acks):
        _match_acks(audit, load, rows)
    else:
        audit.in_flight = len(rows) - len(load.acks)
        if audit.in_flight < 0:
            audit.problems.append(f"{len(load.acks)} acknowledged but only {len(rows)} rows")
    allowed = load.connections + sum(load.socket_errors.values())
    if audit.in_flight > allowed:
        audit.problems.append(f"{audit.in_flight} rows without a 202, at most {allowed} expected")
    return audit


def _match_acks(audit: Audit, load: LoadResult, rows: list[tuple[str, str, int]]) -> None:
    stored = Counter((stream, version) for _, stream, version in rows)
    acknowledged = Counter((ack.aggregate_id, ack.version) for ack in load.acks)
    for (stream, version), count in acknowledged.items():
        if count > 1:
            audit.problems.append(f"{stream!r} version {version} acknowledged {count} times")
        if stored.get((str(stream), version or 0), 0) != 1:
            audit.problems.append(f"acknowledged {stream!r} version {version} is not stored once")
    audit.in_flight = sum(count for key, count in stored.items() if key not in acknowledged)
