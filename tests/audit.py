"""The audit after a run under load: every 202 is in the table exactly once, at the stream
and version it was acknowledged with, and nothing else of the run is there.

Written once, used by every test that loads the service (history, faults, crash) and by
the benchmark. A request is named by whatever its row carries back: an idempotency key, a
correlation id, or a user id made unique per request.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Write:
    """Where one request's event went: its stream and version, and its event id when the
    test knows it (then it must match too)."""

    stream: str
    version: int
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class WriteAudit:
    """What the audit found: its problems (none: the run is exact) and how many rows had
    no 202 (requests whose answer was never read)."""

    problems: list[str] = field(default_factory=list)
    unacknowledged: int = 0


def audit_writes(
    acknowledged: Iterable[tuple[str, Write]],
    stored: Iterable[tuple[str, Write]],
    *,
    unanswered: int = 0,
) -> WriteAudit:
    """Compare what the clients were told (one (request, write) per 202) with what the
    table holds (one (request, write) per row of the run), request by request.

    Problems: a request acknowledged or stored twice; an acknowledged request not stored,
    or stored at another stream, version or event id; more than ``unanswered`` rows of
    requests with no 202 (0 for clients that retry until they have an answer; for a load
    generator that stops mid-request, the requests it may have left in flight)."""
    acknowledged, stored = list(acknowledged), list(stored)
    problems = [
        f"request {request!r} {what} {count} times"
        for what, pairs in (("acknowledged", acknowledged), ("stored", stored))
        for request, count in Counter(request for request, _ in pairs).items()
        if count > 1
    ]
    rows = dict(stored)
    for request, write in acknowledged:
        row = rows.get(request)
        if row is None:
            problems.append(f"acknowledged request {request!r} ({write}) is not stored")
        elif row != write:
            problems.append(f"request {request!r} acknowledged as {write}, stored as {row}")
    answered = {request for request, _ in acknowledged}
    without_202 = [request for request in rows if request not in answered]
    if len(without_202) > unanswered:
        problems.append(
            f"{len(without_202)} rows without a 202, at most {unanswered} expected"
            f" (first: {without_202[:3]})"
        )
    return WriteAudit(problems, len(without_202))


def assert_every_202_stored_once(
    acknowledged: Iterable[tuple[str, Write]], stored: Iterable[tuple[str, Write]]
) -> None:
    """``audit_writes`` with no row left without a 202; fails listing the first problems."""
    problems = audit_writes(acknowledged, stored).problems
    assert not problems, f"{len(problems)} problems: {problems[:10]}"
