"""The rules a command's fields follow, and reading a decoded JSON object by them.

``parse(command_type, fields)`` returns the command or raises ``InvalidCommand``
naming every failing field at once. Numbers arrive as ``int`` (JSON integers) or
``Decimal`` (JSON numbers with a fraction or exponent), never as ``float``: a price is
never rounded through a binary float.

Identifiers and texts: 1 to N characters; no control characters (Unicode Cc), no
bidirectional embeddings, overrides or isolates (they make text display in another order
than it is stored, "Trojan Source"), no lone surrogates (PostgreSQL's jsonb refuses them);
not blank, and no white space at either end (``"alice "`` would be another stream than
``"alice"``, a difference no one sees). White space inside is kept.
"""

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

from cqrs_demo.domain.errors import FieldError, InvalidCommand
from cqrs_demo.domain.text import printable

MAX_ID_LENGTH = 255
MAX_TEXT_LENGTH = 500
MAX_QUANTITY = 2_147_483_647
MAX_TOTAL_PRICE = Decimal(10) ** 15
MAX_PRICE_DECIMALS = 6
# Decimal places of a price kept as written (trailing zeros included); see _stored_price.
MAX_KEPT_SCALE = 20
MAX_VERSION = 2**63 - 1

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?P<fraction>\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})"
)
FORBIDDEN_CHARACTERS = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
# Printable characters that are white space (str.isspace); the unprintable ones are
# forbidden anywhere already.
EDGE_SPACES = " \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARACTERS}]")
# Unknown fields named in one answer; the rest are counted (a body of thousands of
# unknown keys must not get an answer many times its size).
MAX_UNKNOWN_FIELDS_LISTED = 10


class FieldRefused(Exception):
    """One field's value breaks its rule; the message names the field."""


@dataclass(frozen=True, slots=True)
class Rule:
    """How one field is read: ``read(name, value)`` returns the value or raises
    ``FieldRefused``; ``value`` is ``None`` when the field is missing or null."""

    read: Callable[[str, object], object]
    required: bool


class Command(Protocol):
    """What every command offers: its fields' ``RULES``, dataclass fields, the stream it
    goes to, the version that stream must be at (``None``: any), and the client's own
    time, if sent."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    RULES: ClassVar[Mapping[str, Rule]]

    @property
    def stream(self) -> str: ...

    @property
    def expected_version(self) -> int | None: ...

    @property
    def timestamp(self) -> datetime | None: ...


C = TypeVar("C", bound=Command)


def parse(command_type: type[C], fields: Mapping[str, object]) -> C:
    """Validate a decoded JSON object into ``command_type`` by its ``RULES`` (one per
    field); raise ``InvalidCommand`` listing every failing and unknown field."""
    rules = command_type.RULES
    unknown = [name for name in fields if name not in rules]
    errors = [
        FieldError(printable(name), f"unknown field: {printable(name)}")
        for name in unknown[:MAX_UNKNOWN_FIELDS_LISTED]
    ]
    values: dict[str, Any] = {}
    for name, rule in rules.items():
        try:
            values[name] = rule.read(name, fields.get(name))
        except FieldRefused as refused:
            errors.append(FieldError(name, str(refused)))
    if errors:
        raise InvalidCommand(errors, unlisted=max(0, len(unknown) - MAX_UNKNOWN_FIELDS_LISTED))
    return command_type(**values)


def fingerprint(command: Command) -> str:
    """A hash of what the command asks for: equal for equal commands, whatever the JSON
    spelling (key order, spaces, ``150.0`` or ``150.00``), different across command types."""
    canonical: dict[str, object] = {"command": type(command).__name__}
    for field in dataclass_fields(command):
        canonical[field.name] = _canonical(getattr(command, field.name))
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _text(name: str, value: object, limit: int) -> str:
    """A string of 1 to ``limit`` characters by the rules in this module's docstring."""
    if value is None or value == "":
        raise FieldRefused(f"{name} is required")
    if not isinstance(value, str):
        raise FieldRefused(f"{name} must be a string")
    if len(value) > limit:
        raise FieldRefused(f"{name} must be at most {limit} characters, got {len(value)}")
    if not value.isprintable():  # every forbidden character is unprintable
        found = _FORBIDDEN.search(value)
        if found:
            raise FieldRefused(
                f"{name} must not contain control characters, bidirectional overrides or"
                f" lone surrogates; found U+{ord(found[0]):04X} at character {found.start() + 1}"
            )
    if value[0].isspace() or value[-1].isspace():
        if value.isspace():
            raise FieldRefused(f"{name} must not be blank")
        raise FieldRefused(f"{name} must not start or end with white space")
    return value


def identifier(name: str, value: object) -> str:
    """An identifier (a stream, a user, an order, a product): 1 to 255 characters by the
    rules in this module's docstring; raises ``FieldRefused`` naming ``name``."""
    return _text(name, value, MAX_ID_LENGTH)


def _optional_text(name: str, value: object) -> str | None:
    if value == "":
        raise FieldRefused(f"{name} must not be empty: leave it out (or null) for none")
    return None if value is None else _text(name, value, MAX_TEXT_LENGTH)


def _quantity(name: str, value: object) -> int:
    if value is None:
        raise FieldRefused(f"{name} is required")
    number = _integer(name, value)
    if not 1 <= number <= MAX_QUANTITY:
        raise FieldRefused(f"{name} must be between 1 and {MAX_QUANTITY}, got {number}")
    return number


def _integer(name: str, value: object) -> int:
    """A JSON integer. As in JSON Schema, ``2.0`` is the integer 2; ``2.5`` and ``"2"`` are
    not integers, nor is ``true``. Integers of more than 19 digits are refused unread."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise FieldRefused(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if not value.is_finite() or value != value.to_integral_value():
        raise FieldRefused(f"{name} must be an integer")
    if value.adjusted() > 18:
        raise FieldRefused(f"{name} is too large")
    return int(value)


def _total_price(name: str, value: object) -> Decimal:
    if value is None:
        raise FieldRefused(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise FieldRefused(f"{name} must be a number")
    price = Decimal(value)
    if not price.is_finite() or (price.is_signed() and price != 0):
        raise FieldRefused(f"{name} must not be negative")
    if price >= MAX_TOTAL_PRICE:
        raise FieldRefused(f"{name} must be less than {MAX_TOTAL_PRICE:f}")
    _sign, digits, exponent = price.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if _decimal_places(digits, exponent) > MAX_PRICE_DECIMALS:
        raise FieldRefused(f"{name} must have at most {MAX_PRICE_DECIMALS} decimal places")
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
        raise FieldRefused(f"{name} must be an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise FieldRefused(f"{name} must be an RFC 3339 date-time with an offset")
    text = value.upper().replace("Z", "+00:00")
    fraction = match["fraction"] or ""
    text = text.replace(fraction, fraction[:7].ljust(7, "0") if fraction else "", 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise FieldRefused(f"{name} is not a valid date-time: {value[:40]}") from None


def _expected_version(name: str, value: object) -> int | None:
    if value is None:
        return None
    number = _integer(name, value)
    if not 0 <= number <= MAX_VERSION:
        raise FieldRefused(f"{name} must be between 0 and {MAX_VERSION}")
    return number


IDENTIFIER = Rule(identifier, required=True)
OPTIONAL_TEXT = Rule(_optional_text, required=False)
QUANTITY = Rule(_quantity, required=True)
TOTAL_PRICE = Rule(_total_price, required=True)
TIMESTAMP = Rule(_timestamp, required=False)
EXPECTED_VERSION = Rule(_expected_version, required=False)
