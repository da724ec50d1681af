"""Commands: what a client asks the system to do, validated into frozen values.

``parse_create_order`` takes the decoded JSON object of a request and returns a
``CreateOrder`` or raises ``InvalidCommand`` naming every failing field at once.
Numbers arrive as ``int`` (JSON integers) or ``Decimal`` (JSON numbers with a fraction or
exponent), never as ``float``: a price is never rounded through a binary float.
"""

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cqrs_demo.domain.errors import FieldError, InvalidCommand
from cqrs_demo.domain.text import printable

MAX_ID_LENGTH = 255
MAX_QUANTITY = 2_147_483_647
MAX_TOTAL_PRICE = Decimal(10) ** 15
MAX_PRICE_DECIMALS = 6
# Decimal places of a price kept as written (trailing zeros included); see _stored_price.
MAX_KEPT_SCALE = 20
MAX_VERSION = 2**63 - 1

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?P<fraction>\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})"
)
# Every control character (Unicode category Cc: C0, DEL and C1), the bidirectional
# embeddings, overrides and isolates (which make text display in another order than it is
# stored, "Trojan Source"), and lone surrogates (which PostgreSQL's jsonb refuses).
_FORBIDDEN_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Unknown fields named in one answer; the rest are counted (a body of thousands of
# unknown keys must not get an answer many times its size).
MAX_UNKNOWN_FIELDS_LISTED = 10


@dataclass(frozen=True, slots=True)
class CreateOrder:
    """Place an order for ``quantity`` of ``product_id`` on behalf of ``user_id``.

    ``expected_version`` is the version the user's stream must be at (0: no orders yet);
    ``None`` appends after whatever the stream holds when the command is handled.
    ``timestamp`` is the client's own time for the command, kept in the event's metadata.
    """

    user_id: str
    product_id: str
    quantity: int
    total_price: Decimal
    timestamp: datetime | None = None
    expected_version: int | None = None

    def fingerprint(self) -> str:
        """A hash of what the command asks for: equal for equal commands, whatever the
        JSON spelling (key order, spaces, ``150.0`` or ``150.00``)."""
        fields = {
            "command": "CreateOrder",
            "user_id": self.user_id,
            "product_id": self.product_id,
            "quantity": self.quantity,
            "total_price": format(self.total_price.normalize(), "f"),
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "expected_version": self.expected_version,
        }
        canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def parse_create_order(fields: Mapping[str, object]) -> CreateOrder:
    """Validate a decoded JSON object into a ``CreateOrder``; raise ``InvalidCommand``."""
    unknown = [name for name in fields if name not in _PARSERS]
    errors = (
        [
            FieldError(printable(name), f"unknown field: {printable(name)}")
            for name in unknown[:MAX_UNKNOWN_FIELDS_LISTED]
        ]
        if unknown
        else []
    )
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        try:
            values[name] = parse(name, fields.get(name))
        except _FieldRefused as refused:
            errors.append(FieldError(name, str(refused)))
    if errors:
        raise InvalidCommand(errors, unlisted=max(0, len(unknown) - MAX_UNKNOWN_FIELDS_LISTED))
    return CreateOrder(**values)


class _FieldRefused(Exception):
    """One field's value breaks its rule; the message names the field."""


def _identifier(name: str, value: object) -> str:
    if value is None or value == "":
        raise _FieldRefused(f"{name} is required")
    if not isinstance(value, str):
        raise _FieldRefused(f"{name} must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise _FieldRefused(f"{name} must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    if value.isprintable():  # the usual case; every forbidden character is unprintable
        return value
    found = _FORBIDDEN_CHARACTERS.search(value)
    if found:
        raise _FieldRefused(
            f"{name} must not contain control characters, bidirectional overrides or lone"
            f" surrogates; found U+{ord(found[0]):04X} at character {found.start() + 1}"
        )
    return value


def _quantity(name: str, value: object) -> int:
    if value is None:
        raise _FieldRefused(f"{name} is required")
    number = _integer(name, value)
    if not 1 <= number <= MAX_QUANTITY:
        raise _FieldRefused(f"{name} must be between 1 and {MAX_QUANTITY}, got {number}")
    return number


def _integer(name: str, value: object) -> int:
    """A JSON integer. As in JSON Schema, ``2.0`` is the integer 2; ``2.5`` and ``"2"`` are
    not integers, nor is ``true``. Integers of more than 19 digits are refused unread."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _FieldRefused(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if not value.is_finite() or value != value.to_integral_value():
        raise _FieldRefused(f"{name} must be an integer")
    if value.adjusted() > 18:
        raise _FieldRefused(f"{name} is too large")
    return int(value)


def _total_price(name: str, value: object) -> Decimal:
    if value is None:
        raise _FieldRefused(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _FieldRefused(f"{name} must be a number")
    price = Decimal(value)
    if not price.is_finite() or (price.is_signed() and price != 0):
        raise _FieldRefused(f"{name} must not be negative")
    if price >= MAX_TOTAL_PRICE:
        raise _FieldRefused(f"{name} must be less than {MAX_TOTAL_PRICE:f}")
    _sign, digits, exponent = price.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if _decimal_places(digits, exponent) > MAX_PRICE_DECIMALS:
        raise _FieldRefused(f"{name} must have at most {MAX_PRICE_DECIMALS} decimal places")
    return _stored_price(price, exponent)


def _stored_price(price: Decimal, exponent: int) -> Decimal:
    """``price`` (valid) as sent, unless its written form is one PostgreSQL refuses or keeps
    bloated: past ``MAX_KEPT_SCALE`` decimal places (all zeros after the sixth, by then) it
    is cut to six (``0E-16384`` would be refused, ``1.000…`` with 16,000 zeros kept as a
    16 KB number), and a zero's positive exponent is dropped (``0E+1001`` is refused). The
    value stays exact either way; ``-0`` becomes ``0``. (``exponent``: ``price``'s own.)"""
    if exponent < -MAX_KEPT_SCALE:
        return abs(price).quantize(Decimal(1).scaleb(-MAX_PRICE_DECIMALS))
    if exponent > 0 and price == 0:
        return Decimal(0)
    return abs(price)


def _decimal_places(digits: tuple[int, ...], exponent: int) -> int:
    """Digits after the point that matter, of the decimal ``digits`` times 10 to the ``exponent``:
    ``1.50`` has one, ``150.0`` none. (Not by ``normalize()``, which rounds to the context's
    28 digits.)"""
    places = -exponent
    end = len(digits)
    while places > 0 and end > 0 and digits[end - 1] == 0:
        places -= 1
        end -= 1
    return 0 if end == 0 else max(0, places)


def _timestamp(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _FieldRefused(f"{name} must be an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise _FieldRefused(f"{name} must be an RFC 3339 date-time with an offset")
    text = value.upper().replace("Z", "+00:00")
    fraction = match["fraction"] or ""
    text = text.replace(fraction, fraction[:7].ljust(7, "0") if fraction else "", 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _FieldRefused(f"{name} is not a valid date-time: {value[:40]}") from None


def _expected_version(name: str, value: object) -> int | None:
    if value is None:
        return None
    number = _integer(name, value)
    if not 0 <= number <= MAX_VERSION:
        raise _FieldRefused(f"{name} must be between 0 and {MAX_VERSION}")
    return number


_PARSERS: dict[str, Callable[[str, object], object]] = {
    "user_id": _identifier,
    "product_id": _identifier,
    "quantity": _quantity,
    "total_price": _total_price,
    "timestamp": _timestamp,
    "expected_version": _expected_version,
}
