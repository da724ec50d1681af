"""Reading a GET request's path id and query parameters; a 400 naming the one that is wrong.

Shared by the reads (``streams.py``, ``feed.py``, ``queries.py``): every refusal is a
``Problem`` 400 whose ``parameter`` member names the parameter, and whose detail starts with
its name.
"""

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from urllib.parse import unquote_to_bytes

import orjson
from starlette.convertors import Convertor, register_url_convertor

from cqrs_demo.api.problems import Problem
from cqrs_demo.domain.fields import FieldRefused, identifier
from cqrs_demo.domain.text import printable

_DIGITS = re.compile(r"[0-9]{1,19}")


class _AnyText(Convertor[str]):
    """A path parameter of any characters; its endpoint reads and checks it from the raw
    path (``path_identifier``)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def register_text() -> None:
    """Make ``{name:text}`` known to Starlette's routes (before they are built): a path
    parameter of any characters, line breaks too. ``path``'s ``.*`` stops at one, and its
    route would not match: a 404 instead of the 400 naming the id."""
    register_url_convertor("text", _AnyText())


def bad_parameter(name: str, message: str) -> Problem:
    """A 400 naming parameter ``name``; ``message`` follows the name in the detail."""
    return Problem(400, f"{name} {message}", parameter=name)


def path_identifier(raw_path: bytes, prefix: bytes, suffix: bytes, name: str) -> str:
    """The identifier between ``prefix`` and ``suffix`` of the request's raw path,
    percent-decoded as UTF-8 and checked by ``domain.fields.identifier``."""
    path = raw_path.partition(b"?")[0]
    encoded = path[len(prefix) : len(path) - len(suffix)]
    try:
        text = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError as error:
        raise bad_parameter(
            name, f"is not UTF-8 once percent-decoded (byte {error.start})"
        ) from None
    try:
        return identifier(name, text)
    except FieldRefused as refused:
        raise Problem(400, str(refused), parameter=name) from None


def query_parameters(query_string: bytes, known: Sequence[str]) -> dict[str, str]:
    """The query's parameters by name; each of ``known`` at most once, no other."""
    found: dict[str, str] = {}
    for pair in query_string.split(b"&") if query_string else ():
        name_bytes, _, value_bytes = pair.partition(b"=")
        name = _decoded(name_bytes)
        if name not in known:
            shown, names = printable(name), ", ".join(known)
            raise Problem(
                400, f"unknown query parameter {shown!r}; known: {names}", parameter=shown
            )
        if name in found:
            raise bad_parameter(name, "is given more than once")
        found[name] = _decoded(value_bytes)
    return found


def whole_number(
    parameters: Mapping[str, str], name: str, default: int, low: int, high: int
) -> int:
    """Parameter ``name`` as a whole number from ``low`` to ``high``; ``default`` if absent."""
    text = parameters.get(name)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text):
        raise bad_parameter(
            name, f"must be a whole number from {low} to {high}, got {printable(text)}"
        )
    number = int(text)
    if not low <= number <= high:
        raise bad_parameter(name, f"must be from {low} to {high}, got {number}")
    return number


def exact_decimal(value: object) -> orjson.Fragment:
    """orjson's ``default`` for ``Decimal``: the number as stored (``150.00`` stays so)."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _decoded(encoded: bytes) -> str:
    return unquote_to_bytes(encoded.replace(b"+", b" ")).decode("utf-8", "replace")
