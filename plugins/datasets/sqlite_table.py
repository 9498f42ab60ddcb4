"""A table in a SQLite database file, opened read-only."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plugins._options import check_keys, check_type
from plugins.interface import DataError, Dataset, PluginConfigError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SqliteTableDataset(Dataset):
    """Options: ``path`` (relative to agent.toml) and ``table``.

    Rows are read in rowid order, so the content hash is stable while the
    table is unchanged.
    """

    name = "sqlite"

    @classmethod
    def validate_options(
        cls, options: Mapping[str, Any], *, base_dir: Path
    ) -> dict[str, Any]:
        where = "sqlite dataset"
        check_keys(where, options, required=("path", "table"), optional=())
        check_type(where, "path", options["path"], str)
        check_type(where, "table", options["table"], str)
        if not _IDENTIFIER.match(options["table"]):
            raise PluginConfigError(
                f"{where}: table must be a plain SQL identifier (letters, digits, "
                f"underscore) (got {options['table']!r})."
            )
        return {
            "path": str((base_dir / options["path"]).resolve()),
            "table": options["table"],
        }

    @classmethod
    def input_files(cls, options: Mapping[str, Any]) -> dict[str, Path]:
        """Return the file the data set reads, by option key, for the config check."""
        return {"path": Path(options["path"])}

    def describe(self) -> str:
        return f"SQLite table {self.options['table']} in {self.options['path']}"

    def rows(self) -> Iterator[Mapping[str, Any]]:
        path = Path(self.options["path"])
        if not path.is_file():
            raise DataError(f"The SQLite database {path} does not exist.")
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as error:
            raise DataError(
                f"The SQLite database {path} cannot be opened: {error}."
            ) from error
        conn.row_factory = sqlite3.Row
        try:
            yield from self._select(conn)
        finally:
            conn.close()

    def _select(self, conn: sqlite3.Connection) -> Iterator[Mapping[str, Any]]:
        table = self.options["table"]
        try:
            cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                raise DataError(f"{self.describe()}: no such table.") from error
            if "rowid" not in str(error):
                raise DataError(
                    f"{self.describe()} cannot be read: {error}."
                ) from error
            # A WITHOUT ROWID table has no rowid; its primary key orders it.
            cursor = conn.execute(f'SELECT * FROM "{table}"')
        for row in cursor:
            yield dict(row)
