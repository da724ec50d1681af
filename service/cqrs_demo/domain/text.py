"""Showing client-supplied text back in messages, safely."""


def printable(text: str, limit: int = 64) -> str:
    """``text`` cut to ``limit`` characters, with unprintable characters and lone surrogates
    escaped, so that a message quoting it is valid UTF-8 on one line."""
    if len(text) <= limit and text.isprintable():
        return text
    cut = text[:limit]
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in cut)
    return shown + ("…" if len(text) > limit else "")
