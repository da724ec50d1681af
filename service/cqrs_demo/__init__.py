"""cqrs-demo: the command side of a CQRS / event-sourcing system.

Layers, inner to outer: ``domain`` (commands, events, decisions; standard library only),
``handlers`` (one function per command), ``store`` (the only psycopg user), ``api`` (the only
Starlette user), wired together by ``bootstrap.create_app``.
"""

__version__ = "0.1.0"
