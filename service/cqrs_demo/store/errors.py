"""What the store raises instead of driver errors."""


class StoreUnavailable(Exception):
    """No connection could be had in time: the database is down, unreachable or saturated.

    Nothing was written, or the outcome of the last statement is unknown because the
    connection broke while it ran. Callers may retry later.
    """


class StoreError(Exception):
    """The database refused a statement for a reason other than a version conflict."""


class DuplicateRow(StoreError):
    """A row inserted as new was there already (a unique key, SQLSTATE 23505): the statement
    wrote nothing."""


class SchemaNotCurrent(Exception):
    """The database schema is behind what this release needs, or was never created."""


class MigrationChanged(Exception):
    """A migration that was already applied differs from the file shipped with this release."""
