"""A CSV file with a header row."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
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
            for row in reader:
                if None in row:
                    raise DataError(
                        f"Line {reader.line_num} of {path} has more fields than the "
                        "header."
                    )
                yield row
