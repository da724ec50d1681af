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
from dataclasses import dataclass, field

from tests.audit import Write, audit_writes
from tests.bench.load import LoadResult


@dataclass(slots=True)
class Audit:
    rows: int = 0
    acked: int = 0
    in_flight: int = 0
    problems: list[str] = field(default_factory=list)
    detail: str = ""  # what else the audit established, printed after the counts
    events_read: float | None = None  # --cancel: the mean stream length before a cancel

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED: " + "; ".join(self.problems[:5])
        return (
            f"audit {verdict} ({self.acked} acknowledged, {self.in_flight} stored without "
            f"an answer read, {self.rows} rows)" + (f"; {self.detail}" if self.detail else "")
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
    allowed = load.connections + sum(load.socket_errors.values())
    stored = [(user, Write(stream, version)) for user, stream, version in rows]
    if all(ack.aggregate_id is not None for ack in load.acks):
        # Each user is new and its own stream: the 202's stream names the request.
        checked = audit_writes(
            [
                (str(ack.aggregate_id), Write(str(ack.aggregate_id), ack.version or 0))
                for ack in load.acks
            ],
            stored,
            unanswered=allowed,
        )
        audit.problems.extend(checked.problems)
        audit.in_flight = checked.unacknowledged
        return audit
    # The peer's 202s name no request: they are counted, and no request is stored twice.
    audit.problems.extend(audit_writes([], stored, unanswered=len(stored)).problems)
    audit.in_flight = len(rows) - len(load.acks)
    if audit.in_flight < 0:
        audit.problems.append(f"{len(load.acks)} acknowledged but only {len(rows)} rows")
    elif audit.in_flight > allowed:
        audit.problems.append(f"{audit.in_flight} rows without a 202, at most {allowed} expected")
    return audit
