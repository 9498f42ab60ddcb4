"""The built-in detectors: one adapter around river 0.26's drift detectors.

``update()`` changed return type three times in river's history: a tuple
before 0.12, the detector itself until 0.21, and None since. The adapter
ignores the return value and reads ``drift_detected`` right after each
update, on the thread that made it, which works the same way on every
river release since 0.21.

Options are checked when agent.toml loads. River accepts some invalid
settings at construction and fails much later: KSWIN draws ``stat_size``
samples from the ``window_size - stat_size`` oldest values of its window,
so with ``stat_size > window_size / 2`` it raises ValueError on the
window-th update. ``validate_options`` rejects that combination.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from plugins._options import check_keys, check_type
from plugins.detectors import Detector
from plugins.interface import PluginConfigError

# Options of type float also accept an integer such as ``threshold = 50``.
_NUMBER = (int, float)


@dataclass(frozen=True)
class Option:
    """One detector option: its type, default and allowed range."""

    types: type | tuple[type, ...]
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    choices: tuple[str, ...] | None = None

    def check(self, where: str, key: str, value: Any) -> Any:
        """Return ``value`` as the option's type; raise PluginConfigError."""
        check_type(where, key, value, self.types)
        if isinstance(value, float) and not math.isfinite(value):
            raise PluginConfigError(f"{where}: {key} must be finite (got {value!r}).")
        if self.choices is not None and value not in self.choices:
            raise PluginConfigError(
                f"{where}: {key} must be one of {', '.join(self.choices)} "
                f"(got {value!r})."
            )
        if not self._in_range(value):
            raise PluginConfigError(
                f"{where}: {key} must be {self._range_text()} (got {value!r})."
            )
        return float(value) if self.types == _NUMBER else value

    def _in_range(self, value: Any) -> bool:
        low, high = self.minimum, self.maximum
        if low is not None and (value < low or (self.exclusive and value == low)):
            return False
        return not (
            high is not None and (value > high or (self.exclusive and value == high))
        )

    def _range_text(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            low, high = ("(", ")") if self.exclusive else ("[", "]")
            return f"in {low}{self.minimum}, {self.maximum}{high}"
        if self.minimum is not None:
            return (
                f"greater than {self.minimum}"
                if self.exclusive
                else (f"at least {self.minimum}")
            )
        return f"at most {self.maximum}"


class RiverDetector(Detector):
    """Adapter around one river detector class.

    Subclasses name the class in ``river_class``, a dotted path under
    ``river``, and list its options in ``OPTIONS``. The validated options
    are passed to the river constructor unchanged.
    """

    river_class: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Option]]

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self._detector = self._build()

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        where = f"{cls.name} detector"
        check_keys(where, options, required=(), optional=tuple(cls.OPTIONS))
        checked = {
            key: option.check(where, key, options.get(key, option.default))
            for key, option in cls.OPTIONS.items()
        }
        cls._check_combination(where, checked)
        return checked

    @classmethod
    def _check_combination(cls, where: str, options: dict[str, Any]) -> None:
        """Raise PluginConfigError for options that are invalid together."""

    def _build(self) -> Any:
        # Imported here: river takes about a second to import, and the
        # agent's control process validates options without it.
        module_name, _, class_name = f"river.{self.river_class}".rpartition(".")
        river_class: Callable[..., Any] = getattr(
            importlib.import_module(module_name), class_name
        )
        return river_class(**self.options)

    def update(self, value: float) -> bool:
        self._detector.update(value)
        return bool(self._detector.drift_detected)


class Adwin(RiverDetector):
    """ADWIN (Bifet and Gavaldà, 2007): adaptive windowing on the mean.

    After a change ADWIN keeps only the values since its cut, so
    ``change_size`` is its window width.
    """

    name = "adwin"
    river_class = "drift.ADWIN"
    OPTIONS = {
        "delta": Option(_NUMBER, 0.002, 0.0, 1.0, exclusive=True),
        "clock": Option(int, 32, 1),
        "max_buckets": Option(int, 5, 1),
        "min_window_length": Option(int, 5, 1),
        "grace_period": Option(int, 10, 1),
    }

    def change_size(self) -> int | None:
        return int(self._detector.width)


class Kswin(RiverDetector):
    """KSWIN (Raab et al., 2020): a Kolmogorov-Smirnov test in a sliding window.

    ``seed`` defaults to 0 rather than river's None, so that a replay of
    the same values gives the same detections. Each update runs a
    two-sample KS test, so KSWIN costs far more per value than ADWIN.
    """

    name = "kswin"
    river_class = "drift.KSWIN"
    OPTIONS = {
        "alpha": Option(_NUMBER, 0.005, 0.0, 1.0, exclusive=True),
        "window_size": Option(int, 100, 2),
        "stat_size": Option(int, 30, 1),
        "seed": Option(int, 0),
    }

    @classmethod
    def _check_combination(cls, where: str, options: dict[str, Any]) -> None:
        if 2 * options["stat_size"] > options["window_size"]:
            raise PluginConfigError(
                f"{where}: stat_size ({options['stat_size']}) must be at most half "
                f"of window_size ({options['window_size']}), because KSWIN samples "
                "stat_size values from the older part of its window. Lower "
                f"stat_size to {options['window_size'] // 2} or less, or raise "
                "window_size."
            )

    def change_size(self) -> int | None:
        return int(self.options["stat_size"])


class PageHinkley(RiverDetector):
    """The Page-Hinkley test: a cumulative sum of deviations from the mean."""

    name = "page-hinkley"
    river_class = "drift.PageHinkley"
    OPTIONS = {
        "min_instances": Option(int, 30, 1),
        "delta": Option(_NUMBER, 0.005, 0.0),
        "threshold": Option(_NUMBER, 50.0, 0.0, exclusive=True),
        "alpha": Option(_NUMBER, 0.9999, 0.0, 1.0),
        "mode": Option(str, "both", choices=("up", "down", "both")),
    }


class HddmA(RiverDetector):
    """HDDM_A (Frías-Blanco et al., 2014): Hoeffding bounds on an error rate.

    Fed 0 (correct) and 1 (wrong). With ``two_sided_test = false``, the
    default, it reports only increases of the error rate.

    HDDM_A keeps the running mean at its cut point, the sample where the
    mean plus its Hoeffding bound was lowest, and tests the mean since
    then against it. So ``change_size`` is the count of values since that
    cut point. Its detection comes hundreds of values after a rise from a
    low error rate, and without this estimate the monitor's z-test would
    take its baseline from values after the change.
    """

    name = "hddm-a"
    river_class = "drift.binary.HDDMA"
    input_kind = "binary"
    OPTIONS = {
        "drift_confidence": Option(_NUMBER, 0.001, 0.0, 1.0, exclusive=True),
        "warning_confidence": Option(_NUMBER, 0.005, 0.0, 1.0, exclusive=True),
        "two_sided_test": Option(bool, False),
    }

    @classmethod
    def _check_combination(cls, where: str, options: dict[str, Any]) -> None:
        if options["warning_confidence"] < options["drift_confidence"]:
            raise PluginConfigError(
                f"{where}: warning_confidence ({options['warning_confidence']}) "
                f"must be at least drift_confidence ({options['drift_confidence']})."
            )

    def change_size(self) -> int | None:
        # river 0.26 names the running mean ``_z`` and the means at the cut
        # points ``_x_min`` (for increases) and ``_x_max`` (for decreases,
        # tested only when two-sided). All three reset on the next update.
        # Another river release may rename them; the monitor then falls
        # back to confirm_rows.
        detector = self._detector
        try:
            rose = detector._mean_incr(detector.drift_confidence)
            cut = detector._x_min if rose else detector._x_max
            return int(detector._z.n - cut.n)
        except AttributeError:
            return None
