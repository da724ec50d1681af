"""Reading a request body as one JSON object, refusing anything else with a clear 4xx."""

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from starlette.requests import Request

from cqrs_demo.api.problems import Problem
from cqrs_demo.domain.text import printable

INVALID_JSON = "Invalid JSON payload"


@dataclass(frozen=True, slots=True)
class BodyRules:
    """How a command body is read: at most ``rules.limit`` bytes within ``seconds``."""

    limit: int
    seconds: float


async def read_json_object(request: Request, rules: BodyRules) -> dict[str, object]:
    """The body as a JSON object. Numbers with a fraction or exponent become ``Decimal``.

    Refuses (``Problem``): a content type other than JSON (415), a body over ``rules.limit`` bytes
    (413, before reading it all), a body not received within ``rules.seconds`` (408), a
    body that is not UTF-8 JSON, has duplicate keys, NaN or Infinity, nesting too deep or
    numbers too long, or is not an object (400).
    """
    _check_content_type(request.headers.get("content-type"))
    try:
        async with asyncio.timeout(rules.seconds):
            body = await _read_limited(request, rules.limit)
    except TimeoutError:
        raise Problem(
            408,
            f"request body not received within {rules.seconds:g} s",
            headers={"Connection": "close"},
        ) from None
    text = _decode(body)
    try:
        value = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except _Refused as refused:
        raise Problem(400, f"{INVALID_JSON}: {refused}") from None
    except json.JSONDecodeError as error:
        raise Problem(
            400, f"{INVALID_JSON}: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise Problem(400, f"{INVALID_JSON}: nested too deeply") from None
    except ValueError:  # int() refuses integers of more than 4,300 digits
        raise Problem(400, f"{INVALID_JSON}: a number has too many digits") from None
    if not isinstance(value, dict):
        raise Problem(400, f"{INVALID_JSON}: the body must be a JSON object")
    return value


def _check_content_type(header: str | None) -> None:
    media_type, _, parameters = (header or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        shown = printable(media_type) if media_type else "none"
        raise Problem(
            415,
            f"Content-Type must be application/json, got {shown}",
            headers={"Accept-Post": "application/json"},
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise Problem(
                415,
                "Content-Type charset must be utf-8",
                headers={"Accept-Post": "application/json"},
            )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> NoReturn:
    raise Problem(413, f"request body is larger than {limit} bytes")


def _decode(body: bytes) -> str:
    if not body.strip():
        raise Problem(400, f"{INVALID_JSON}: the body is empty")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Problem(400, f"{INVALID_JSON}: not valid UTF-8 at byte {error.start}") from None


class _Refused(ValueError):
    """Valid to Python's parser, refused by JSON (RFC 8259) or by us."""


def _refuse_constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is not a JSON number")


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Refused(f"duplicate key {printable(key)!r}")
        seen.add(key)
    return dict(pairs)
