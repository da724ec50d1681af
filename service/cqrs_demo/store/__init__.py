"""The PostgreSQL event store: the only package that imports psycopg.

Its SQL lives beside it: numbered migrations in ``migrations/``, statements in ``queries/``.
Driver errors are translated here, where connections are handed out, into ``errors``.
"""
