"""Reading a request body as one JSON object, refusing anything else with a clear 4xx."""

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from starlette.types import Message, Receive, Scope

from cqrs_demo.api.problems import Problem
from cqrs_demo.domain.text import printable

INVALID_JSON = "Invalid JSON payload"

RequestHeaders = Mapping[bytes, bytes]


@dataclass(frozen=True, slots=True)
class BodyRules:
    """How a command body is read: at most ``rules.limit`` bytes within ``seconds``."""

    limit: int
    seconds: float


def request_headers(scope: Scope) -> RequestHeaders:
    """The request's headers by lower-case name; of a repeated header, the first."""
    return dict(reversed(scope["headers"]))


async def read_json_object(
    receive: Receive, headers: RequestHeaders, rules: BodyRules
) -> dict[str, object]:
    """The body as a JSON object. Numbers with a fraction or exponent become ``Decimal``.

    Refuses (``Problem``): a content type other than JSON or a content coding other than
    ``identity`` (415), a body over ``rules.limit`` bytes (413, before reading it all), a
    body not received within ``rules.seconds`` (408), a body that is not UTF-8 JSON, has
    duplicate keys, NaN or Infinity, nesting too deep, numbers too long or with an exponent
    beyond any decimal's, or is not an object (400).
    """
    _check_content_type(headers.get(b"content-type"))
    _check_content_encoding(headers.get(b"content-encoding"))
    body = await _receive_body(receive, headers.get(b"content-length"), rules)
    text = _decode(body)
    try:
        value = _DECODER.decode(text)
    except _Refused as refused:
        raise Problem(400, f"{INVALID_JSON}: {refused}") from None
    except json.JSONDecodeError as error:
        raise Problem(
            400, f"{INVALID_JSON}: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise Problem(400, f"{INVALID_JSON}: nested too deeply") from None
    except InvalidOperation:  # Decimal() of an exponent beyond any decimal's
        raise Problem(
            400, f"{INVALID_JSON}: a number is out of range (its exponent is too large)"
        ) from None
    except ValueError:  # int() refuses integers of more than 4,300 digits
        raise Problem(400, f"{INVALID_JSON}: a number has too many digits") from None
    if not isinstance(value, dict):
        raise Problem(400, f"{INVALID_JSON}: the body must be a JSON object")
    return value


def _check_content_type(header: bytes | None) -> None:
    media_type, _, parameters = (header or b"").decode("latin-1").partition(";")
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


def _check_content_encoding(header: bytes | None) -> None:
    """Bodies are read as sent: a coding we would not undo (gzip, ...) is refused by name
    rather than read as JSON (RFC 9110, section 15.5.16)."""
    if header is None:
        return
    coding = header.decode("latin-1").strip().lower()
    if coding not in ("", "identity"):
        raise Problem(
            415,
            f"Content-Encoding {printable(coding)} is not supported; send the body unencoded",
            headers={"Accept-Encoding": "identity"},
        )


async def _receive_body(receive: Receive, declared: bytes | None, rules: BodyRules) -> bytes:
    """The whole body, refused (413) once it is known to exceed ``rules.limit``, and (408)
    when it has not arrived within ``rules.seconds``. The deadline is a plain timer that
    cancels this task: ``asyncio.timeout`` costs more than the rest of a command's read."""
    if declared is not None and declared.isdigit() and int(declared) > rules.limit:
        _too_large(rules.limit)
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(rules.seconds, expire)
    try:
        message = await receive()
        chunks = [_chunk(message)]
        size = len(chunks[0])
        while size <= rules.limit and message.get("more_body", False):
            message = await receive()
            chunks.append(_chunk(message))
            size += len(chunks[-1])
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            raise Problem(
                408,
                f"request body not received within {rules.seconds:g} s",
                headers={"Connection": "close"},
            ) from None
        raise
    finally:
        timer.cancel()
    if size > rules.limit:
        _too_large(rules.limit)
    return b"".join(chunks)  # one chunk, the usual case: that chunk itself, not a copy


def _chunk(message: Message) -> bytes:
    if message["type"] == "http.disconnect":
        raise Problem(400, "the client closed the connection before the whole body arrived")
    body: bytes = message.get("body", b"")
    return body


def _too_large(limit: int) -> NoReturn:
    raise Problem(413, f"request body is larger than {limit} bytes")


def _decode(body: bytes) -> str:
    if not body.strip():
        raise Problem(400, f"{INVALID_JSON}: the body is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Problem(400, f"{INVALID_JSON}: not valid UTF-8 at byte {error.start}") from None
    if text.startswith("\ufeff"):
        raise Problem(400, f"{INVALID_JSON}: the body starts with a byte order mark (BOM)")
    return text


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


_DECODER = json.JSONDecoder(
    parse_float=Decimal,
    parse_constant=_refuse_constant,
    object_pairs_hook=_object_without_duplicates,
)
