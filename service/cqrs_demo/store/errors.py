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


class RecoveryConflict(StoreError):
    """A standby cancelled a read because it conflicted with the replay of the primary's
    changes (SQLSTATE 40001 or 40P01 on a server in hot standby: e.g. a VACUUM on the
    primary removed row versions the read still needed). Nothing is wrong with the data or
    the connection; the same read again usually succeeds."""


class SchemaNotCurrent(Exception):
    """The database schema is behind what this release needs, or was never created."""


class MigrationChanged(Exception):
    """A migration that was already applied differs from the file shipped with this release."""
