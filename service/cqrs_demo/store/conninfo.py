"""Connection strings: a libpq URL or DSN, with the password given apart from it."""

import psycopg.conninfo


def build_conninfo(url: str, *, password: str | None = None) -> str:
    """A libpq connection string from ``url`` with ``password`` set (if given).

    Raises ``ValueError`` when ``url`` is neither a libpq URL nor a key=value DSN.
    """
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ValueError("not a valid libpq URL or DSN") from None
    if password is not None:
        params["password"] = password
    return psycopg.conninfo.make_conninfo(**{key: str(value) for key, value in params.items()})


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for log lines and messages: never the password."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"
