"""Exceptions raised by the store.

StoreError
 ├── StoreBusyError       the database stayed locked through every retry
 ├── SchemaError          the file's schema is newer than this code or broken
 └── NotFoundError        a row that the caller named does not exist
"""


class StoreError(Exception):
    """Base class of every error the store raises."""


class StoreBusyError(StoreError):
    def __init__(self, path: str, attempts: int) -> None:
        super().__init__(
            f"The store {path} stayed locked through {attempts} attempts to "
            "start a write. Another process holds a long write transaction; "
            "check for a stuck `sqlite3` shell or a second agent."
        )
        self.path = path
        self.attempts = attempts


class SchemaError(StoreError):
    pass


class NotFoundError(StoreError):
    pass
