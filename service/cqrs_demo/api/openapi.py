"""The OpenAPI 3.1 document of the API: every endpoint, body, header and answer.

Commands come from the table in ``api.commands``: each one's body schema from its fields'
rules (one schema per rule, below), its answers from every command's plus its own
refusals. The rest is written out, so that it states the contract exactly (limits,
patterns, every status); the API tests and the schemathesis fuzzer hold the service to it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from cqrs_demo.api import feed, queries
from cqrs_demo.api.commands import CommandSpec
from cqrs_demo.api.problems import POSITION_HEADER
from cqrs_demo.api.streams import DEFAULT_LIMIT, MAX_LIMIT
from cqrs_demo.domain import fields
from cqrs_demo.domain.fields import (
    EDGE_SPACES,
    MAX_ID_LENGTH,
    MAX_PRICE_DECIMALS,
    MAX_QUANTITY,
    MAX_TEXT_LENGTH,
    MAX_TOTAL_PRICE,
    MAX_VERSION,
)

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
# Any character but a control character, and no white space at either end (JSON Schema
# patterns cannot say everything the rules say: bidirectional controls and lone surrogates
# are refused too, see domain/fields.py; schemas here may accept more, never less).
_CONTROL = "\\u0000-\\u001f\\u007f"
_EDGE = _CONTROL + EDGE_SPACES


def _text(limit: int) -> dict[str, object]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": limit,
        "pattern": f"^[^{_EDGE}](?:[^{_CONTROL}]*[^{_EDGE}])?$",
    }


_IDENTIFIER = _text(MAX_ID_LENGTH)


def _problem(description: str, **headers: Mapping[str, object]) -> dict[str, object]:
    answer: dict[str, object] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER: Mapping[str, object] = {"schema": {"type": "string", "pattern": "^[0-9]+$"}}

_RULE_SCHEMAS: Mapping[fields.Rule, Mapping[str, object]] = {
    fields.IDENTIFIER: _IDENTIFIER,
    fields.OPTIONAL_TEXT: {**_text(MAX_TEXT_LENGTH), "type": ["string", "null"]},
    fields.QUANTITY: {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
    fields.TOTAL_PRICE: {
        "type": "number",
        "minimum": 0,
        "exclusiveMaximum": int(MAX_TOTAL_PRICE),
        "description": f"Kept as the exact decimal sent; at most {MAX_PRICE_DECIMALS} "
        "decimal places.",
    },
    fields.TIMESTAMP: {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "The client's time (RFC 3339), kept in the event's metadata.",
    },
    fields.EXPECTED_VERSION: {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": MAX_VERSION,
        "description": "The version the user's stream must be at; 0 for a new stream.",
    },
}


def _body_schema(rules: Mapping[str, fields.Rule]) -> dict[str, object]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name, rule in rules.items() if rule.required],
        "properties": {name: _RULE_SCHEMAS[rule] for name, rule in rules.items()},
    }


_ORDER_ACCEPTED = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "status",
        "count",
        "aggregate_id",
        "order_id",
        "version",
        "event_ids",
        "position",
    ],
    "properties": {
        "status": {"const": "events_persisted"},
        "count": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "aggregate_id": {"type": "string"},
        "order_id": {"type": "string", "format": "uuid"},
        "version": {"type": "integer", "minimum": 1},
        "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        "position": {
            "type": "string",
            "pattern": "^[0-9]{1,20}-[0-9]{1,19}$",
            "description": "The feed position of the command's last event (GET /api/events): "
            "a reader of the feed that has passed it sees the command.",
        },
    },
}

_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "aggregate_id": {"type": "string"},
        "expected_version": {"type": "integer"},
        "actual_version": {"type": "integer"},
        "error_id": {"type": "string"},
        "parameter": {"type": "string"},
        "order_id": {"type": "string"},
        "user_id": {"type": "string"},
        "cancelled_on": {"type": "string", "format": "date-time"},
        "projection": {"type": "string"},
        "wanted_position": {"type": "string"},
        "reached_position": {"type": "string"},
    },
}


def _optional(
    where: str, name: str, description: str, schema: Mapping[str, object]
) -> dict[str, object]:
    """An optional parameter ``where`` ("header", "query") of an operation."""
    return {
        "name": name,
        "in": where,
        "required": False,
        "description": description,
        "schema": schema,
    }


def _header(name: str, description: str, schema: Mapping[str, object]) -> dict[str, object]:
    return _optional("header", name, description, schema)


_COMMAND_HEADERS = [
    _header(
        "If-Match",
        'The expected stream version as an ETag, like "3".',
        {"type": "string", "pattern": '^("[0-9]{1,18}"|[0-9]{1,18})$'},
    ),
    _header(
        "Idempotency-Key",
        "Makes retries safe: the same key and body replay the first answer.",
        {"type": "string", "pattern": "^[!-~]{1,255}$"},
    ),
    _header(
        "X-Correlation-ID",
        "Kept in the event's metadata.",
        {"type": "string", "pattern": "^[!-~]{1,200}$"},
    ),
]

_COMMAND_RESPONSES: Mapping[str, dict[str, object]] = {
    "202": {
        "description": "The event is stored (committed) at the given stream version.",
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Idempotent-Replayed": {"schema": {"const": "true"}},
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderAccepted"}}},
    },
    "400": _problem("Invalid JSON, invalid fields (all listed in errors) or headers."),
    "401": _problem("Tokens are configured and no valid bearer token was sent."),
    "405": _problem("Only POST is allowed.", Allow={"schema": {"const": "POST"}}),
    "408": _problem("The body did not arrive in time."),
    "409": _problem(
        "The stream is not at the expected version, or a request with the "
        "same Idempotency-Key is still in progress."
    ),
    "413": _problem("The body is larger than the limit."),
    "415": _problem("The body is not JSON."),
    "422": _problem("The Idempotency-Key was used for a different request."),
    "500": _problem("An unexpected error; the answer carries an error id."),
    "503": _problem(
        "The event store is unavailable, or the service stopped before the command was"
        " done (its outcome unknown: retry with the same Idempotency-Key).",
        **{"Retry-After": _RETRY_AFTER},
    ),
}


def _command_operation(spec: CommandSpec[Any]) -> dict[str, object]:
    """The POST of one command: its body, every command's headers and answers, and its
    own refusals (a status every command has gets the refusal added to its description)."""
    responses = dict(_COMMAND_RESPONSES)
    for status, meaning in spec.refusals.items():
        earlier = responses.get(str(status))
        described = meaning if earlier is None else f"{earlier['description']} Or: {meaning}"
        responses[str(status)] = _problem(described)
    schema_ref = f"#/components/schemas/{spec.command.__name__}"
    return {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "parameters": _COMMAND_HEADERS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}},
        },
        "responses": responses,
    }


_STREAM_EVENT = {
    "type": "object",
    "required": ["event_id", "event_type", "version", "occurred_on", "payload", "metadata"],
    "properties": {
        "event_id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "occurred_on": {"type": "string", "format": "date-time"},
        "payload": {"type": "object"},
        "metadata": {"type": "object"},
    },
}

_STREAM_PAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["aggregate_id", "stream_version", "direction", "events"],
    "properties": {
        "aggregate_id": {"type": "string"},
        "stream_version": {"type": "integer", "minimum": 1},
        "direction": {"enum": ["forward", "backward"]},
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/StreamEvent"}},
    },
}


def _query(name: str, description: str, schema: Mapping[str, object]) -> dict[str, object]:
    return _optional("query", name, description, schema)


_READ_STREAM = {
    "operationId": "readStream",
    "summary": "Read the events of one stream, a page at a time",
    "parameters": [
        {
            "name": "aggregate_id",
            "in": "path",
            "required": True,
            "description": "The stream (for orders: the user id), percent-encoded.",
            "schema": _IDENTIFIER,
        },
        _query(
            "from_version",
            "The first version to read (default: 1 forward, the head backward).",
            {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
        ),
        _query(
            "limit",
            f"At most this many events (default {DEFAULT_LIMIT}).",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        ),
        _query(
            "direction",
            "forward (old to new, the default) or backward (from the head down).",
            {"enum": ["forward", "backward"]},
        ),
    ],
    "responses": {
        "200": {
            "description": "The page; ETag is the stream's version.",
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "Link": {
                    "description": 'The next page, rel="next", when there is one.',
                    "schema": {"type": "string"},
                },
            },
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/StreamPage"}}
            },
        },
        "400": _problem("A parameter is invalid (named in parameter)."),
        "401": _problem("Tokens are configured and no valid bearer token was sent."),
        "404": _problem("The stream has no events (urn:cqrs-demo:stream-not-found)."),
        "414": _problem("The URL is longer than the limit (docs/security.md)."),
        "500": _problem("An unexpected error; the answer carries an error id."),
        "503": _problem("The event store is unavailable.", **{"Retry-After": _RETRY_AFTER}),
    },
}


_POSITION = {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,19}$"}

_FEED_EVENT = {
    "type": "object",
    "required": [
        "position",
        "stream",
        "event_id",
        "event_type",
        "version",
        "occurred_on",
        "payload",
        "metadata",
    ],
    "properties": {
        "position": _POSITION,
        "stream": {"type": "string"},
        "event_id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "occurred_on": {"type": "string", "format": "date-time"},
        "payload": {"type": "object"},
        "metadata": {"type": "object"},
    },
}

_FEED_PAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["events", "next"],
    "properties": {
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/FeedEvent"}},
        "next": {
            **_POSITION,
            "description": "Where to read on (after=): the last event's position, or the "
            "after given when the page is empty.",
        },
    },
}

_READ_FEED = {
    "operationId": "readFeed",
    "summary": "Read the events of every stream in feed order, a page at a time",
    "parameters": [
        _query(
            "after",
            "Read the events after this position (a page's next, or a 202's position); "
            "default: from the first event.",
            _POSITION,
        ),
        _query(
            "limit",
            f"At most this many events (default {feed.DEFAULT_LIMIT}).",
            {"type": "integer", "minimum": 1, "maximum": feed.MAX_LIMIT},
        ),
        _query(
            "wait",
            "When there is nothing after the position, wait up to this many seconds for "
            "events (a long poll; default 0).",
            {"type": "integer", "minimum": 0, "maximum": feed.MAX_WAIT_SECONDS},
        ),
    ],
    "responses": {
        "200": {
            "description": "The page: events in feed order, and next.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeedPage"}}},
        },
        "400": _problem("A parameter is invalid (named in parameter)."),
        "401": _problem("Tokens are configured and no valid bearer token was sent."),
        "414": _problem("The URL is longer than the limit (docs/security.md)."),
        "500": _problem("An unexpected error; the answer carries an error id."),
        "503": _problem("The event store is unavailable.", **{"Retry-After": _RETRY_AFTER}),
    },
}

# The queries (api/queries.py): read models, each answer at a stated position.

_POSITION = {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,19}$"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "order_id",
        "user_id",
        "product_id",
        "quantity",
        "total_price",
        "status",
        "placed_at",
        "cancelled_at",
        "reason",
    ],
    "properties": {
        "order_id": {"type": "string"},
        "user_id": {"type": "string"},
        "product_id": {"type": "string"},
        "quantity": {"type": "integer"},
        "total_price": {"type": "number", "description": "The exact decimal, as stored."},
        "status": {"enum": ["placed", "cancelled"]},
        "placed_at": _TIME,
        "cancelled_at": _NULLABLE_TIME,
        "reason": {"type": ["string", "null"]},
    },
}

_ORDER_PAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_id", "orders"],
    "properties": {
        "user_id": {"type": "string"},
        "orders": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
    },
}

_ORDER_SUMMARY = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "user_id",
        "orders_placed",
        "orders_cancelled",
        "open_orders",
        "open_total",
        "last_order_at",
    ],
    "properties": {
        "user_id": {"type": "string"},
        "orders_placed": {"type": "integer", "minimum": 0},
        "orders_cancelled": {"type": "integer", "minimum": 0},
        "open_orders": {"type": "integer", "minimum": 0},
        "open_total": {"type": "number", "description": "The exact decimal sum."},
        "last_order_at": _NULLABLE_TIME,
    },
}

_POSITION_ANSWER = {
    "description": "The position of the projection the answer reflects: every event up to "
    "it, none after.",
    "schema": _POSITION,
}

_FRESHNESS = [
    _query(
        "min_position",
        "Answer only at or past this position (a command's, to read your own write): wait "
        "for the projection up to wait_ms, then 503 projection-behind (at once if the "
        "projection is stopped short of it).",
        _POSITION,
    ),
    _query(
        "wait_ms",
        f"How long to wait for min_position, in ms (default {queries.DEFAULT_WAIT_MS}).",
        {"type": "integer", "minimum": 0, "maximum": queries.MAX_WAIT_MS},
    ),
]


def _path_id(name: str, description: str) -> dict[str, object]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": _IDENTIFIER,
    }


def _query_operation(
    operation_id: str,
    summary: str,
    parameters: Sequence[Mapping[str, object]],
    answer: Mapping[str, object],
    **more: Mapping[str, object],
) -> dict[str, object]:
    """A query: its parameters, its 200 ``answer`` and every query's other answers."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [*parameters, *_FRESHNESS],
        "responses": {
            "200": answer,
            "400": _problem("A parameter is invalid (named in parameter)."),
            "401": _problem("Tokens are configured and no valid bearer token was sent."),
            **more,
            "414": _problem("The URL is longer than the limit (docs/security.md)."),
            "500": _problem("An unexpected error; the answer carries an error id."),
            "503": _problem(
                "The projection had not reached min_position within wait_ms, or is stopped "
                "short of it (urn:cqrs-demo:projection-behind, naming both positions, and "
                "stopped_at_event, the event it cannot apply), or a standby the queries read "
                "from cancelled the read for its replay, three times "
                "(urn:cqrs-demo:recovery-conflict), or the store is unavailable.",
                **{"Retry-After": _RETRY_AFTER, POSITION_HEADER: _POSITION_ANSWER},
            ),
        },
    }


def _json_answer(description: str, schema: str, **headers: object) -> dict[str, object]:
    return {
        "description": description,
        "headers": {POSITION_HEADER: _POSITION_ANSWER, **headers},
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_USER_ID = _path_id("user_id", "The user, percent-encoded.")

_QUERIES: Sequence[tuple[str, Mapping[str, object]]] = (
    (
        "/api/queries/orders/{order_id}",
        _query_operation(
            "getOrder",
            "One order, as the orders projection has it",
            [_path_id("order_id", "The order, percent-encoded.")],
            _json_answer("The order.", "Order"),
            **{
                "404": _problem(
                    "No such order at this position (urn:cqrs-demo:order-not-found).",
                    **{POSITION_HEADER: _POSITION_ANSWER},
                )
            },
        ),
    ),
    (
        "/api/queries/users/{user_id}/orders",
        _query_operation(
            "listUserOrders",
            "A user's orders, newest first, a page at a time",
            [
                _USER_ID,
                _query("status", "Only orders in this status.", {"enum": ["placed", "cancelled"]}),
                _query(
                    "limit",
                    f"At most this many orders (default {queries.DEFAULT_LIMIT}).",
                    {"type": "integer", "minimum": 1, "maximum": queries.MAX_LIMIT},
                ),
                _query(
                    "after",
                    'The opaque cursor of the next page, from a Link: rel="next".',
                    {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9_-]+$",
                        "maxLength": queries.MAX_CURSOR_LENGTH,
                    },
                ),
            ],
            _json_answer(
                "A page of orders (empty for a user without orders).",
                "OrderPage",
                Link={
                    "description": 'The next page, rel="next", when there is one.',
                    "schema": {"type": "string"},
                },
            ),
        ),
    ),
    (
        "/api/queries/users/{user_id}/summary",
        _query_operation(
            "getUserSummary",
            "A user's orders in numbers, as the user_order_summaries projection has them",
            [_USER_ID],
            _json_answer("The summary (all zero for a user without orders).", "OrderSummary"),
        ),
    ),
)


_PROJECTION_STATUS = {
    "type": "object",
    "required": [
        "name",
        "state",
        "position",
        "head",
        "events_behind",
        "seconds_behind",
        "events_applied",
        "error",
        "failed_event_id",
        "failed_event_type",
    ],
    "properties": {
        "name": {"type": "string"},
        "state": {"enum": ["running", "stopped", "rebuilding"]},
        "position": {"type": "string"},
        "head": {"type": "string"},
        "events_behind": {"type": "integer", "minimum": 0},
        "seconds_behind": {"type": "number", "minimum": 0},
        "events_applied": {"type": "integer", "minimum": 0},
        "error": {"type": ["string", "null"]},
        "failed_event_id": {"type": ["string", "null"], "format": "uuid"},
        "failed_event_type": {"type": ["string", "null"]},
    },
}

_PROJECTIONS = {
    "operationId": "listProjections",
    "summary": "Each projection: state, position, the feed's head, how far behind",
    "responses": {
        "200": {
            "description": "Every projection, stopped ones with their error and event.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["projections"],
                        "properties": {
                            "projections": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ProjectionStatus"},
                            }
                        },
                    }
                }
            },
        },
        "400": _problem("A query parameter was given; this read takes none."),
        "401": _problem("Tokens are configured and no valid bearer token was sent."),
        "500": _problem("An unexpected error; the answer carries an error id."),
        "503": _problem("The store is unavailable.", **{"Retry-After": _RETRY_AFTER}),
    },
}


def openapi_document(
    commands: Sequence[CommandSpec[Any]], *, bearer_tokens: bool
) -> dict[str, object]:
    """The document of an API serving ``commands``; with ``bearer_tokens``, the commands
    and reads require a token."""
    paths: dict[str, object] = {
        spec.path: {"post": _secured(_command_operation(spec), bearer_tokens)} for spec in commands
    }
    paths["/api/streams/{aggregate_id}/events"] = {
        "get": _secured(dict(_READ_STREAM), bearer_tokens)
    }
    paths[feed.PATH] = {"get": _secured(dict(_READ_FEED), bearer_tokens)}
    paths.update(
        {path: {"get": _secured(dict(operation), bearer_tokens)} for path, operation in _QUERIES}
    )
    paths["/api/projections"] = {"get": _secured(dict(_PROJECTIONS), bearer_tokens)}
    paths.update(_PROBES)
    schemas: dict[str, object] = {
        spec.command.__name__: _body_schema(spec.command.RULES) for spec in commands
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cqrs-demo API",
            "version": "1",
            "description": "The commands and stream reads of a CQRS / event-sourcing system.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                **schemas,
                "OrderAccepted": _ORDER_ACCEPTED,
                "StreamPage": _STREAM_PAGE,
                "StreamEvent": _STREAM_EVENT,
                "FeedPage": _FEED_PAGE,
                "FeedEvent": _FEED_EVENT,
                "Order": _ORDER,
                "OrderPage": _ORDER_PAGE,
                "OrderSummary": _ORDER_SUMMARY,
                "ProjectionStatus": _PROJECTION_STATUS,
                "Problem": _PROBLEM_SCHEMA,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _secured(operation: dict[str, object], bearer_tokens: bool) -> dict[str, object]:
    if bearer_tokens:
        operation["security"] = [{"bearer": []}]
    return operation


_PROBES: Mapping[str, object] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "The process answers, and which release it runs",
            "responses": {
                "200": {
                    "description": "Alive",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "release"],
                                "properties": {
                                    "status": {"type": "string", "enum": ["ok"]},
                                    "release": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Pool open, database reachable, schema current",
            "responses": {
                "200": {
                    "description": "Ready",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "schema_version"],
                            }
                        }
                    },
                },
                "503": _problem("Not ready", **{"Retry-After": _RETRY_AFTER}),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}
