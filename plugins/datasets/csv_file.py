"""A CSV file with a header row."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from plugins._options import check_keys, check_type
from plugins.interface import DataError, Dataset, PluginConfigError


class CsvDataset(Dataset):
    """Options: ``path`` (relative to agent.toml), ``delimiter`` (default ``,``).

    Values arrive as strings; the loader converts features to numbers and
    reports the row and column of any value that is not one.
    """

    name = "csv"

    @classmethod
    def validate_options(
        cls, options: Mapping[str, Any], *, base_dir: Path
    ) -> dict[str, Any]:
        where = "csv dataset"
        check_keys(where, options, required=("path",), optional=("delimiter",))
        check_type(where, "path", options["path"], str)
        delimiter = options.get("delimiter", ",")
        check_type(where, "delimiter", delimiter, str)
        if len(delimiter) != 1:
            raise PluginConfigError(
                f"{where}: delimiter must be one character (got {delimiter!r})."
            )
        path = (base_dir / options["path"]).resolve()
        return {"path": str(path), "delimiter": delimiter}

    @classmethod
    def input_files(cls, options: Mapping[str, Any]) -> dict[str, Path]:
        """Return the file the data set reads, by option key, for the config check."""
        return {"path": Path(options["path"])}

    def describe(self) -> str:
        return f"CSV file {self.options['path']}"

    def rows(self) -> Iterator[Mapping[str, Any]]:
        path = Path(self.options["path"])
        try:
            handle = path.open(newline="", encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"The CSV file {path} does not exist.") from None
        except OSError as error:
            raise DataError(
                f"The CSV file {path} cannot be read: {error.strerror}."
            ) from error
        with handle:
            reader = csv.DictReader(handle, delimiter=self.options["delimiter"])
            if reader.fieldnames is None:
                return
            _check_header(reader.fieldnames, path)
            for row in reader:
                if None in row:
                    raise DataError(
                        f"Line {reader.line_num} of {path} has more fields than the "
                        "header."
                    )
                yield row


def _check_header(names: Sequence[str], path: Path) -> None:
    """Reject a blank or repeated column name, which ``csv.DictReader`` mishandles.

    DictReader keys each row by the header, so of two columns with the same
    name only the last one's values would be kept, without any error.
    """
    first_column: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if not name.strip():
            raise DataError(
                f"The header of the CSV file {path} has no name for column {column}; "
                "name every column."
            )
        if name in first_column:
            raise DataError(
                f"The header of the CSV file {path} names the column {name!r} twice "
                f"(columns {first_column[name]} and {column}); rename one of them."
            )
        first_column[name] = column
