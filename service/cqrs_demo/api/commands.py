"""Commands over HTTP: the table of commands, and the one endpoint type that serves them.

A command endpoint is a plain ASGI callable, not a ``Request`` -> ``Response`` function, and
``app.HotPathsFirst`` hands it its POSTs before Starlette's middleware and router: commands
are the hot path, and Starlette's request and response objects, header lookups and wrapper
layers cost more per command than the rest of the endpoint (``docs/performance.md``).
Errors still answer through the one problem table. The routes, ``HotPathsFirst`` and the
OpenAPI document are all built from ``COMMANDS``.
"""

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic

import orjson
from starlette.types import Receive, Scope, Send

from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules, RequestHeaders, read_json_object, request_headers
from cqrs_demo.api.problems import Problem, as_problem, problem_response
from cqrs_demo.domain import orders
from cqrs_demo.domain.errors import FieldError, InvalidCommand
from cqrs_demo.domain.fields import C, parse
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.projections import VERIFICATION_PREFIX
from cqrs_demo.domain.text import printable
from cqrs_demo.handlers.append import Accepted, CommandContext
from cqrs_demo.handlers.cancel_order import handle_cancel_order
from cqrs_demo.handlers.create_order import handle_create_order
from cqrs_demo.metrics.tally import TALLY
from cqrs_demo.ports import EventStore

_VERSION_ETAG = re.compile(r'"(\d{1,18})"|(\d{1,18})')
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]{1,200}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_JSON = (b"content-type", b"application/json")
# The reason a refused command is counted under (``cqrs_commands_refused_total``), by the
# type of its problem; see ``refusal_reason``.
_REFUSALS = {
    "urn:cqrs-demo:invalid-command": "validation",
    "urn:cqrs-demo:version-conflict": "conflict",
    "urn:cqrs-demo:idempotency-key-reused": "idempotency",
    "urn:cqrs-demo:idempotency-key-in-flight": "idempotency",
    "urn:cqrs-demo:order-not-found": "decision",
    "urn:cqrs-demo:order-already-cancelled": "decision",
}


def accepted_body(outcome: Accepted) -> bytes:
    """The 202 of every command: ``status``, ``count``, ``aggregate_id``, what the command
    recorded (``order_id``), ``version``, ``event_ids`` and ``position`` (its last event's
    in the feed, ``GET /api/events``)."""
    return orjson.dumps(
        {
            "status": "events_persisted",
            "count": str(len(outcome.event_ids)),
            "aggregate_id": outcome.stream,
            **outcome.result,
            "version": outcome.version,
            "event_ids": outcome.event_ids,  # orjson writes a UUID as str(UUID) does
            "position": str(outcome.position),
        }
    )


@dataclass(frozen=True, slots=True)
class CommandSpec(Generic[C]):
    """One command of the API: where it is posted, its OpenAPI name and summary, the
    command type (whose ``RULES`` read its body and give its schema), its handler, the
    answers its decision may give besides every command's (status: what it means), and
    how its 202 body is written."""

    path: str
    operation_id: str
    summary: str
    command: type[C]
    handle: Callable[[C, EventStore, CommandContext], Awaitable[Accepted]]
    refusals: Mapping[int, str] = field(default_factory=dict)
    render: Callable[[Accepted], bytes] = accepted_body


COMMANDS: tuple[CommandSpec[Any], ...] = (
    CommandSpec(
        "/api/commands/order/create",
        "createOrder",
        "Place an order: append OrderCreated to the user's stream",
        orders.CreateOrder,
        handle_create_order,
    ),
    CommandSpec(
        "/api/commands/order/cancel",
        "cancelOrder",
        "Cancel one of the user's orders: append OrderCancelled to the user's stream",
        orders.CancelOrder,
        handle_cancel_order,
        refusals={
            404: "The order is not one of this user's orders (urn:cqrs-demo:order-not-found).",
            409: "The order was already cancelled (urn:cqrs-demo:order-already-cancelled).",
        },
    ),
)


class CommandEndpoint:
    """``POST`` of one command: body read and validated, handled, answered 202 with the
    stream's new version, or with a problem.

    Leaves ``client``, ``aggregate``, ``version`` and ``events`` in ``scope["state"]`` for
    the access log.
    """

    def __init__(
        self, spec: CommandSpec[Any], store: EventStore, tokens: BearerTokens, body: BodyRules
    ) -> None:
        self.spec = spec
        self._store = store
        self._tokens = tokens
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope, receive, send)

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Handle one request; return the status answered."""
        headers = request_headers(scope)
        state = scope.setdefault("state", {})
        try:
            state["client"] = self._tokens.client(headers.get(b"authorization"))
            fields = await read_json_object(receive, headers, self._body)
            command = _with_if_match(parse(self.spec.command, fields), headers.get(b"if-match"))
            state["aggregate"] = command.stream
            if command.stream.startswith(VERIFICATION_PREFIX):
                _refuse_unless_verification(self._tokens, headers)
            outcome = await self.spec.handle(command, self._store, _context(headers))
        except Exception as error:
            problem = as_problem(error)
            if TALLY.on:
                _count_refusal(problem)
            await problem_response(problem)(scope, receive, send)
            return problem.status
        state["version"] = outcome.version
        state["events"] = len(outcome.event_ids)
        await _send_accepted(send, outcome, self.spec.render(outcome))
        return 202


def refusal_reason(problem: Problem) -> str | None:
    """Why a command answered ``problem`` was refused: ``validation`` (its body or a header
    is malformed, too large, too slow, or breaks a field's rule), ``conflict`` (the stream
    was not at the expected version), ``idempotency`` (the key was used for another
    request, or is in flight), ``decision`` (the order's state refuses it), or
    ``unauthorized``. ``None`` for a 5xx: the service failed, the command was not refused."""
    reason = _REFUSALS.get(problem.problem_type)
    if reason is not None:
        return reason
    if problem.status == 401:
        return "unauthorized"
    return "validation" if 400 <= problem.status < 500 else None


def _count_refusal(problem: Problem) -> None:
    reason = refusal_reason(problem)
    if reason is not None:
        TALLY.refused(reason)


def _refuse_unless_verification(tokens: BearerTokens, headers: RequestHeaders) -> None:
    """A stream under the reserved prefix (every command's stream is its ``user_id``) takes
    commands only from the deployment's verification, which presents its own token: a
    client's order there would be stored but never shown by a read model."""
    if not tokens.verifies(headers.get(b"authorization")):
        message = (
            f"user_id must not start with {VERIFICATION_PREFIX!r}: the prefix is reserved for"
            " the deployment's verification (docs/api.md, Reserved streams)"
        )
        raise InvalidCommand([FieldError("user_id", message)])


def _with_if_match(command: C, header: bytes | None) -> C:
    """Merge ``If-Match: "N"`` (or a bare ``N``) into the command's expected version; they
    must agree."""
    if header is None:
        return command
    text = header.decode("latin-1")
    match = _VERSION_ETAG.fullmatch(text.strip())
    if match is None:
        raise Problem(
            400, f'If-Match must be one version in quotes, like "3"; got {printable(text)}'
        )
    version = int(match[1] or match[2])
    if command.expected_version is None:
        return replace(command, expected_version=version)
    if command.expected_version != version:
        message = f'expected_version {command.expected_version} and If-Match "{version}" disagree'
        raise InvalidCommand([FieldError("expected_version", message)])
    return command


def _context(headers: RequestHeaders) -> CommandContext:
    command_id = uuid7()
    given = headers.get(b"x-correlation-id")
    if given is None:
        correlation_id = str(command_id)
    else:
        correlation_id = given.decode("latin-1")
        if not _PRINTABLE_ASCII.fullmatch(correlation_id):
            raise Problem(400, "X-Correlation-ID must be 1 to 200 printable ASCII characters")
    key = headers.get(b"idempotency-key")
    idempotency_key = None if key is None else key.decode("latin-1")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise Problem(400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return CommandContext(command_id, correlation_id, idempotency_key)


async def _send_accepted(send: Send, outcome: Accepted, body: bytes) -> None:
    headers = [
        _JSON,
        (b"content-length", b"%d" % len(body)),
        (b"etag", b'"%d"' % outcome.version),
    ]
    if outcome.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})
