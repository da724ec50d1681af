"""The PostgreSQL event store: the only package that imports psycopg.

Its SQL lives beside it: numbered migrations (tables, indexes, triggers) in ``migrations/``,
one file per function in ``functions/``, statements in ``queries/``.
Driver errors are translated here, where connections are handed out, into ``errors``.
"""
