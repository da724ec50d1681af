"""Connection strings: a libpq URL or DSN, with the password given apart from it.

A string may name several servers (``postgresql://u@db1:5432,db2:5432/cqrs_events``, or
``host=db1,db2 port=5432,5432``): libpq tries them in order and keeps the first that
answers and has the role ``target_session_attrs`` asks for. libpq only finds a bad list
when it connects (a port that is not a number, two ports for three hosts): ``build_conninfo``
refuses those at once, so a typo is a start-up error naming the variable, not a service
that cannot reach its database.
"""

import psycopg.conninfo

SESSION_ROLES = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
# The roles that take writes: a string naming several servers must ask for one of these,
# or libpq could keep a standby, and every command would fail there.
WRITABLE_ROLES = ("read-write", "primary")
LOAD_BALANCING = ("disable", "random")


def build_conninfo(url: str, *, password: str | None = None, writes: bool = False) -> str:
    """A libpq connection string from ``url`` with ``password`` set (if given).

    ``writes``: the string must reach a server that takes writes: one that names several
    servers must say ``target_session_attrs=read-write`` (or ``primary``), and none may ask
    for a standby. Raises ``ValueError`` saying what is wrong when ``url`` is neither a
    libpq URL nor a key=value DSN, or its list of servers is malformed (``check_servers``).
    """
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ValueError("not a valid libpq URL or DSN") from None
    settings = {key: str(value) for key, value in params.items()}
    check_servers(settings)
    if writes:
        _check_writable(settings)
    if password is not None:
        settings["password"] = password
    return psycopg.conninfo.make_conninfo(**settings)


def check_servers(params: dict[str, str]) -> None:
    """Raise ``ValueError`` unless the servers in ``params`` are a list libpq can use: no
    empty host in a list of several, one port for all or one per host, each a number from
    1 to 65535 (or empty: the default), as many ``hostaddr`` as hosts, and a known
    ``target_session_attrs`` and ``load_balance_hosts``."""
    hosts = _items(params.get("host", ""))
    if len(hosts) > 1 and not all(hosts):
        raise ValueError(f"host {hosts.index('') + 1} of {len(hosts)} is empty")
    ports = _items(params.get("port", ""))
    if len(ports) not in (1, len(hosts)):
        raise ValueError(f"{len(ports)} ports for {len(hosts)} hosts: give one, or one per host")
    for number, port in enumerate(ports, start=1):
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"port {number} ({port!r}) is not a number from 1 to 65535")
    addresses = _items(params.get("hostaddr", ""))
    if "hostaddr" in params and len(addresses) != len(hosts) and "host" in params:
        raise ValueError(f"{len(addresses)} hostaddr for {len(hosts)} hosts: give one per host")
    _check_choice(params, "target_session_attrs", SESSION_ROLES)
    _check_choice(params, "load_balance_hosts", LOAD_BALANCING)


def server_attempts(params: dict[str, str]) -> list[dict[str, str]]:
    """``params`` once per server it names (its ``host``, ``hostaddr`` and ``port`` lists
    taken apart; one port for all is given to each), without ``target_session_attrs`` and
    ``load_balance_hosts``, which choose among servers. One server: a list of one.
    ``params`` must have passed ``check_servers``."""
    hosts = _items(params.get("host", ""))
    addresses = _items(params["hostaddr"]) if "hostaddr" in params else []
    count = max(len(hosts), len(addresses))
    ports = _items(params.get("port", ""))
    ports = ports * count if len(ports) == 1 else ports
    common = {
        key: value
        for key, value in params.items()
        if key not in ("host", "hostaddr", "port", "target_session_attrs", "load_balance_hosts")
    }
    attempts = []
    for number in range(count):
        attempt = dict(common)
        for key, values in (("host", hosts), ("hostaddr", addresses), ("port", ports)):
            if key in params and number < len(values) and values[number]:
                attempt[key] = values[number]
        attempts.append(attempt)
    return attempts


def _check_writable(params: dict[str, str]) -> None:
    role = params.get("target_session_attrs", "any")
    if role not in ("any", *WRITABLE_ROLES):
        raise ValueError(f"target_session_attrs={role} would connect to a standby: use read-write")
    hosts = _items(params.get("host") or params.get("hostaddr") or "")
    if len(hosts) > 1 and role == "any":
        raise ValueError(
            f"names {len(hosts)} servers without target_session_attrs=read-write:"
            " the first that answers could be a standby"
        )


def _check_choice(params: dict[str, str], name: str, choices: tuple[str, ...]) -> None:
    value = params.get(name)
    if value is not None and value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",")]


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for log lines and messages: never the password. Several
    servers read ``user@db1:5432,db2:5432/dbname``."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    hosts = _items(str(params.get("host") or "localhost"))
    ports = _items(str(params.get("port") or "5432"))
    ports = ports * len(hosts) if len(ports) == 1 else ports
    servers = ",".join(
        f"{host or 'localhost'}:{port or '5432'}" for host, port in zip(hosts, ports, strict=False)
    )
    return f"{params.get('user', '')}@{servers}/{params.get('dbname', '')}"
