"""RFC 9457 problem details, and the one table that maps every error to an HTTP answer."""

import contextlib
import logging
from collections.abc import Callable, Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cqrs_demo.domain.errors import (
    ExpectedVersionMismatch,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidCommand,
    OrderAlreadyCancelled,
    OrderNotFound,
)
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.ports import OrderNotProjected, ProjectionBehind
from cqrs_demo.store.errors import RecoveryConflict, SchemaNotCurrent, StoreUnavailable

log = logging.getLogger("cqrs_demo.api")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "2"
# A query behind its projection: soon; behind a stopped one: it moves once an operator acts.
RETRY_BEHIND_SECONDS = "1"
RETRY_STOPPED_SECONDS = "30"
# The position of the projection a query's answer reflects (api/queries.py).
POSITION_HEADER = "Projection-Position"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An HTTP problem raised inside the API layer: status, detail and extension members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        problem_type: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: object,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem_type = problem_type
        self.headers = dict(headers or {})
        self.extensions = extensions


def stopped_before_answer() -> Problem:
    """The answer to a request the service's stop cut short: still waiting (for the
    database, most likely) when the drain ran out. A command's outcome is then unknown."""
    return Problem(
        503,
        "The service stopped before this request was done: a command may or may not have"
        " been written. Please retry (with the same Idempotency-Key to learn which).",
        problem_type="urn:cqrs-demo:service-stopping",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def answer_if_stopping(
    stopping: Callable[[], bool], scope: Scope, receive: Receive, send: Send
) -> int:
    """For a request cancelled, called while its ``CancelledError`` is handled: re-raise it
    unless the worker is stopping (``stopping()``); else answer 503 ``stopped_before_answer``
    unless the answer has started (then the connection closes with what was sent), and
    return the status to log."""
    if not stopping():
        raise  # the CancelledError its caller is handling
    with contextlib.suppress(RuntimeError):  # uvicorn refuses a second start
        await problem_response(stopped_before_answer())(scope, receive, send)
    return 503


def problem_response(problem: Problem) -> Response:
    body = problem_body(problem.status, problem.detail, problem.problem_type, **problem.extensions)
    return Response(body, problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def problem_body(
    status: int, detail: str, problem_type: str = "about:blank", **extensions: object
) -> bytes:
    """The JSON of a problem (RFC 9457): ``type``, ``title``, ``status``, ``detail``, then
    the extension members."""
    body = {
        "type": problem_type,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extensions,
    }
    return orjson.dumps(body)


def as_problem(error: Exception) -> Problem:
    """Translate any error that reaches the HTTP boundary; log what the client is not told."""
    match error:
        case Problem():
            return error
        case InvalidCommand():
            errors = [{"field": e.field, "message": e.message} for e in error.errors]
            problem = Problem(
                400, str(error), problem_type="urn:cqrs-demo:invalid-command", errors=errors
            )
            if error.unlisted:
                problem.extensions["unlisted_errors"] = error.unlisted
            return problem
        case ExpectedVersionMismatch():
            return Problem(
                409,
                "Conflict: Aggregate version mismatch. Please retry.",
                problem_type="urn:cqrs-demo:version-conflict",
                headers={"ETag": f'"{error.actual_version}"'},
                aggregate_id=error.stream,
                expected_version=error.expected_version,
                actual_version=error.actual_version,
            )
        case OrderNotFound():
            return Problem(
                404,
                str(error),
                problem_type="urn:cqrs-demo:order-not-found",
                order_id=error.order_id,
                user_id=error.user_id,
            )
        case OrderAlreadyCancelled():
            return Problem(
                409,
                str(error),
                problem_type="urn:cqrs-demo:order-already-cancelled",
                order_id=error.order_id,
                cancelled_on=error.cancelled_on.isoformat(),
            )
        case IdempotencyKeyReused():
            return Problem(422, str(error), problem_type="urn:cqrs-demo:idempotency-key-reused")
        case IdempotencyKeyInFlight():
            return Problem(
                409,
                str(error),
                problem_type="urn:cqrs-demo:idempotency-key-in-flight",
                headers={"Retry-After": "1"},
            )
        case OrderNotProjected():
            return Problem(
                404,
                str(error),
                problem_type="urn:cqrs-demo:order-not-found",
                headers={POSITION_HEADER: str(error.position)},
                order_id=error.order_id,
            )
        case ProjectionBehind(stopped_at=stopped):
            stopped_members = {} if stopped is None else {"stopped_at_event": str(stopped.event_id)}
            retry = RETRY_BEHIND_SECONDS if stopped is None else RETRY_STOPPED_SECONDS
            return Problem(
                503,
                str(error),
                problem_type="urn:cqrs-demo:projection-behind",
                headers={"Retry-After": retry, POSITION_HEADER: str(error.reached)},
                projection=error.projection,
                wanted_position=str(error.wanted),
                reached_position=str(error.reached),
                **stopped_members,
            )
        case RecoveryConflict():
            log.warning("answering 503: %s", error)
            return Problem(
                503,
                "The read database (a standby) cancelled this query: it conflicted with the"
                " replay of the primary's changes. Please retry.",
                problem_type="urn:cqrs-demo:recovery-conflict",
                headers={"Retry-After": RETRY_BEHIND_SECONDS},
            )
        case StoreUnavailable() | SchemaNotCurrent():
            log.error("answering 503: %s", error)
            return Problem(
                503,
                "The event store is unavailable. Please retry.",
                problem_type="urn:cqrs-demo:store-unavailable",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        case HTTPException() if error.status_code == 405 and error.headers:
            allowed = error.headers.get("Allow", "")
            return Problem(405, f"method not allowed; allowed: {allowed}", headers=error.headers)
        case HTTPException():
            return Problem(error.status_code, error.detail, headers=error.headers)
    error_id = uuid7().hex
    log.error("internal error %s", error_id, exc_info=error)
    return Problem(500, f"Internal error; quote error id {error_id}.", error_id=error_id)
