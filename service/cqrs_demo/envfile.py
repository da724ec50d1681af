"""Environment files as systemd's ``EnvironmentFile=`` reads the ones the role writes:
``NAME=VALUE`` lines, blank lines and ``#`` or ``;`` comments, a value optionally in single
or double quotes. For ``cqrs-demo config check``, which checks a new file before it
replaces the one the running service was started with.
"""

import re
from pathlib import Path

from cqrs_demo.settings import ConfigError

_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)")


def read_environment_file(path: Path) -> dict[str, str]:
    """The variables ``path`` sets; ``ConfigError`` naming the file and line of one that is
    not ``NAME=VALUE``, or if the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise ConfigError(f"{path} cannot be read: {reason}") from None
    variables = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = _ASSIGNMENT.fullmatch(stripped)
        if match is None:
            raise ConfigError(f"{path} line {number} is not NAME=VALUE: {stripped[:80]!r}")
        variables[match["name"]] = _unquoted(match["value"])
    return variables


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
