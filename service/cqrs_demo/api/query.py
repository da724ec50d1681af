"""Query parameters of the read endpoints, read one way: each known one at most once, no
unknown ones, numbers in their range. Every refusal is a ``Problem`` 400 whose
``parameter`` member names the parameter."""

import re
from collections.abc import Collection, Mapping
from urllib.parse import unquote_to_bytes

from cqrs_demo.api.problems import Problem
from cqrs_demo.domain.text import printable

_DIGITS = re.compile(r"[0-9]{1,19}")


def query_parameters(query_string: bytes, known: Collection[str]) -> dict[str, str]:
    """The parameters of ``query_string`` (percent- and ``+``-decoded, UTF-8 with invalid
    bytes replaced); 400 for a name not in ``known`` or one given more than once."""
    found: dict[str, str] = {}
    for pair in query_string.split(b"&") if query_string else ():
        name_bytes, _, value_bytes = pair.partition(b"=")
        name = _decoded(name_bytes)
        if name not in known:
            shown = printable(name)
            raise Problem(
                400,
                f"unknown query parameter {shown!r}; known: {', '.join(known)}",
                parameter=shown,
            )
        if name in found:
            raise bad_parameter(name, "is given more than once")
        found[name] = _decoded(value_bytes)
    return found


def whole_number(
    parameters: Mapping[str, str], name: str, default: int, low: int, high: int
) -> int:
    """Parameter ``name`` as a whole number from ``low`` to ``high``; ``default`` when it
    is not given; 400 for anything else."""
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


def bad_parameter(name: str, message: str) -> Problem:
    """The 400 of parameter ``name``: ``"<name> <message>"``."""
    return Problem(400, f"{name} {message}", parameter=name)


def _decoded(encoded: bytes) -> str:
    return unquote_to_bytes(encoded.replace(b"+", b" ")).decode("utf-8", "replace")
