"""The OpenAPI 3.1 document of the API: every endpoint, body, header and answer.

It is written out rather than derived, so that it states the contract exactly (limits,
patterns, every status); the API tests and the schemathesis fuzzer hold the service to it.
"""

from collections.abc import Mapping

from cqrs_demo.domain.commands import (
    MAX_ID_LENGTH,
    MAX_PRICE_DECIMALS,
    MAX_QUANTITY,
    MAX_TOTAL_PRICE,
    MAX_VERSION,
)

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_IDENTIFIER = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
    "pattern": "^[^\\u0000-\\u001f\\u007f]+$",
}


def _problem(description: str, **headers: Mapping[str, object]) -> dict[str, object]:
    answer: dict[str, object] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER: Mapping[str, object] = {"schema": {"type": "string", "pattern": "^[0-9]+$"}}

_CREATE_ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_id", "product_id", "quantity", "total_price"],
    "properties": {
        "user_id": {**_IDENTIFIER, "description": "The user; the stream the order goes to."},
        "product_id": _IDENTIFIER,
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
        "total_price": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": int(MAX_TOTAL_PRICE),
            "description": f"Kept as the exact decimal sent; at most {MAX_PRICE_DECIMALS} "
            "decimal places.",
        },
        "timestamp": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "The client's time (RFC 3339), kept in the event's metadata.",
        },
        "expected_version": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": MAX_VERSION,
            "description": "The version the user's stream must be at; 0 for a new stream.",
        },
    },
}

_ORDER_ACCEPTED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "count", "aggregate_id", "order_id", "version", "event_ids"],
    "properties": {
        "status": {"const": "events_persisted"},
        "count": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "aggregate_id": {"type": "string"},
        "order_id": {"type": "string", "format": "uuid"},
        "version": {"type": "integer", "minimum": 1},
        "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
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
    },
}


def _header(name: str, description: str, schema: dict[str, object]) -> dict[str, object]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


_CREATE_ORDER_OPERATION = {
    "operationId": "createOrder",
    "summary": "Place an order: append OrderCreated to the user's stream",
    "parameters": [
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
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateOrder"}}},
    },
    "responses": {
        "202": {
            "description": "The event is stored (committed) at the given stream version.",
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "Idempotent-Replayed": {"schema": {"const": "true"}},
            },
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/OrderAccepted"}}
            },
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
        "503": _problem("The event store is unavailable.", **{"Retry-After": _RETRY_AFTER}),
    },
}


def openapi_document(*, bearer_tokens: bool) -> dict[str, object]:
    operation: dict[str, object] = dict(_CREATE_ORDER_OPERATION)
    if bearer_tokens:
        operation["security"] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cqrs-demo command API",
            "version": "1",
            "description": "The command side of a CQRS / event-sourcing system.",
        },
        "paths": {
            "/api/commands/order/create": {"post": operation},
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process answers",
                    "responses": {
                        "200": {
                            "description": "Alive",
                            "content": {"application/json": {"schema": {"type": "object"}}},
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
        },
        "components": {
            "schemas": {
                "CreateOrder": _CREATE_ORDER,
                "OrderAccepted": _ORDER_ACCEPTED,
                "Problem": _PROBLEM_SCHEMA,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
