"""River's shipped data sets, e.g. ``Shuttle``, which need no network."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plugins._options import check_keys, check_type
from plugins.interface import DataError, Dataset, PluginConfigError

# The data sets whose file ships inside the river 0.26 wheel (subclasses of
# river.datasets.base.FileDataset). The others download on first use,
# which an agent without network access cannot do. Listed here so that
# checking agent.toml does not import river, which takes about a second.
SHIPPED = (
    "AirlinePassengers",
    "Bananas",
    "ChickWeights",
    "ImageSegments",
    "Phishing",
    "SP500Stocks",
    "Shuttle",
    "SolarFlare",
    "TrumpApproval",
    "WaterFlow",
    "Yeast",
)

# river yields (x, y) pairs without naming y. These are the column names
# river's own loaders read the target from (``iter_csv(target=...)``);
# other data sets call the target column "y".
TARGET_NAMES = {"Shuttle": "anomaly", "Phishing": "is_phishing"}
DEFAULT_TARGET = "y"


class RiverDataset(Dataset):
    """Options: ``name``, the class name in ``river.datasets`` (e.g. ``"Shuttle"``),
    and optionally ``first_rows``: read only that many rows, in the file's
    order, and hold the rest out (``rigdeck-agent replay --seed -1 --skip N``
    sends exactly the held-out rows).

    Each row contains the data set's features and its target under
    ``TARGET_NAMES[name]`` (``anomaly`` for Shuttle), else ``y``.
    """

    name = "river"

    @classmethod
    def validate_options(
        cls, options: Mapping[str, Any], *, base_dir: Path
    ) -> dict[str, Any]:
        where = "river dataset"
        check_keys(where, options, required=("name",), optional=("first_rows",))
        check_type(where, "name", options["name"], str)
        first_rows = options.get("first_rows")
        if first_rows is not None:
            check_type(where, "first_rows", first_rows, int)
            if first_rows < 2:
                raise PluginConfigError(
                    f"{where}: first_rows must be 2 or more (got {first_rows}); "
                    "leave it out to read every row."
                )
        if options["name"] not in SHIPPED:
            raise PluginConfigError(
                f"{where}: {options['name']!r} is not a data set shipped with river "
                "0.26 (those download over the network). Shipped: "
                f"{', '.join(SHIPPED)}."
            )
        if first_rows is None:
            return {"name": options["name"]}
        return {"name": options["name"], "first_rows": first_rows}

    def default_target(self) -> str:
        return TARGET_NAMES.get(self.options["name"], DEFAULT_TARGET)

    def describe(self) -> str:
        first_rows = self.options.get("first_rows")
        limit = f" (first {first_rows} rows)" if first_rows else ""
        return f"river dataset {self.options['name']}{limit}"

    def rows(self) -> Iterator[Mapping[str, Any]]:
        from river import datasets

        dataset = getattr(datasets, self.options["name"])()
        target = self.default_target()
        first_rows = self.options.get("first_rows")
        count = 0
        for index, (x, y) in enumerate(dataset):
            if first_rows is not None and index >= first_rows:
                return
            count += 1
            if isinstance(y, dict):
                raise DataError(
                    f"{self.describe()} has several targets per row ({', '.join(y)}); "
                    "rigdeck's recipes train on one target."
                )
            if target in x:
                raise DataError(
                    f"{self.describe()} has a feature named {target!r}, the same as "
                    "its "
                    "target column."
                )
            yield {**x, target: y}
        if first_rows is not None and count < first_rows:
            raise DataError(
                f"{self.describe()}: first_rows is {first_rows}, but the data set "
                f"has only {count} rows; lower first_rows so that rows are left "
                "to hold out."
            )
