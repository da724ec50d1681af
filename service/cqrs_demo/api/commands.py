"""Command endpoints: HTTP body in, command handled, 202 with the stream's new version out."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.body import BodyRules, read_json_object
from cqrs_demo.api.problems import Problem
from cqrs_demo.domain.commands import CreateOrder, parse_create_order
from cqrs_demo.domain.errors import FieldError, InvalidCommand
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.text import printable
from cqrs_demo.handlers import CommandContext, EventStore, OrderPlaced, handle_create_order

Endpoint = Callable[[Request], Awaitable[Response]]

_VERSION_ETAG = re.compile(r'"(\d{1,18})"|(\d{1,18})')
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]{1,200}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def create_order_endpoint(store: EventStore, tokens: BearerTokens, body: BodyRules) -> Endpoint:
    """``POST /api/commands/order/create``: place an order on the user's stream."""

    async def create_order(request: Request) -> Response:
        request.state.client = tokens.client(request)
        fields = await read_json_object(request, body)
        command = _with_if_match(parse_create_order(fields), request.headers.get("if-match"))
        request.state.aggregate = command.user_id
        placed = await handle_create_order(command, store, _context(request))
        request.state.version = placed.version
        request.state.events = len(placed.event_ids)
        return _accepted(placed)

    return create_order


def _with_if_match(command: CreateOrder, header: str | None) -> CreateOrder:
    """Merge ``If-Match: "N"`` (or a bare ``N``) into the command's expected version; they
    must agree."""
    if header is None:
        return command
    match = _VERSION_ETAG.fullmatch(header.strip())
    if match is None:
        raise Problem(
            400, f'If-Match must be one version in quotes, like "3"; got {printable(header)}'
        )
    version = int(match[1] or match[2])
    if command.expected_version is None:
        return replace(command, expected_version=version)
    if command.expected_version != version:
        message = f'expected_version {command.expected_version} and If-Match "{version}" disagree'
        raise InvalidCommand([FieldError("expected_version", message)])
    return command


def _context(request: Request) -> CommandContext:
    command_id = uuid7()
    correlation_id = request.headers.get("x-correlation-id", str(command_id))
    if not _PRINTABLE_ASCII.fullmatch(correlation_id):
        raise Problem(400, "X-Correlation-ID must be 1 to 200 printable ASCII characters")
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise Problem(400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return CommandContext(command_id, correlation_id, idempotency_key)


def _accepted(placed: OrderPlaced) -> Response:
    body = {
        "status": "events_persisted",
        "count": str(len(placed.event_ids)),
        "aggregate_id": placed.stream,
        "order_id": placed.order_id,
        "version": placed.version,
        "event_ids": [str(event_id) for event_id in placed.event_ids],
    }
    headers = {"ETag": f'"{placed.version}"'}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(orjson.dumps(body), 202, headers=headers, media_type="application/json")
