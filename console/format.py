"""Text formatting shared by the screens: ages, sizes, bars and sparklines.

Everything here returns plain strings or ``rich.text.Text`` so that a state
reads the same in 16 colours, 256 colours or none: colour only repeats what
a word or symbol already shows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from rich.text import Text

BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"
SPARK_LEVELS = "▁▂▃▄▅▆▇█"
NO_VALUE = "-"


def format_age(seconds: float | None) -> str:
    """Return a duration as k9s prints ages: ``42s``, ``5m``, ``3h``, ``2d``."""
    if seconds is None or not math.isfinite(seconds):
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h"
    return f"{seconds // 86400:.0f}d"


def format_duration(seconds: float | None) -> str:
    """Return a duration with two units: ``4m05s``, ``2h13m``."""
    if seconds is None or not math.isfinite(seconds):
        return NO_VALUE
    seconds = int(max(0.0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_until(timestamp: float | None, now: float) -> str:
    """Return how far ahead ``timestamp`` is: ``in 5h12m``, or ``due`` when past."""
    if timestamp is None:
        return NO_VALUE
    if timestamp <= now:
        return "due"
    return f"in {format_duration(timestamp - now)}"


def format_time(timestamp: float | None) -> str:
    """Return a Unix time as local ``YYYY-MM-DD HH:MM:SS``."""
    if timestamp is None:
        return NO_VALUE
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def format_percent(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return NO_VALUE
    return f"{ratio * 100:.0f}%"


def format_bytes(count: float | None) -> str:
    """Return a byte count in binary units: ``512B``, ``3.2GiB``."""
    if count is None or not math.isfinite(count):
        return NO_VALUE
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_number(value: object) -> str:
    """Return a metric value compactly: 4 significant digits for floats."""
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def ratio_of(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return used / total


def bar(ratio: float | None, width: int) -> str:
    """Return a horizontal bar of ``width`` cells filled to ``ratio`` (0 to 1).

    Eighth blocks give the bar a resolution of ``1 / (8 * width)``. A missing
    value is drawn as dots, so it never reads as an empty (0 %) bar.
    """
    if ratio is None or not math.isfinite(ratio):
        return "·" * width
    eighths = round(min(max(ratio, 0.0), 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full
    if full < width:
        text += BAR_EIGHTHS[rest]
    return text.ljust(width)


def meter(ratio: float | None, width: int = 4) -> Text:
    """Return a bar and its percentage, e.g. ``▕██▌ ▏ 62%``; red above 90 %."""
    text = Text("▕", style="dim")
    text.append(bar(ratio, width), style=load_style(ratio))
    text.append("▏", style="dim")
    text.append(format_percent(ratio).rjust(4))
    return text


def load_style(ratio: float | None) -> str:
    """Return the colour of a utilisation: green, yellow from 70 %, red from 90 %."""
    if ratio is None or not math.isfinite(ratio):
        return "dim"
    if ratio >= 0.9:
        return "red"
    if ratio >= 0.7:
        return "yellow"
    return "green"


def sparkline(
    values: Sequence[float | None],
    width: int,
    low: float | None = None,
    high: float | None = None,
) -> str:
    """Return ``values`` as one line of ``width`` block characters.

    The scale runs from ``low`` to ``high`` when given (use 0 and 1 for
    ratios so that a flat 50 % line sits half way up), else from the data's
    own minimum to maximum. Buckets take the maximum of the values they
    cover, so a short spike stays visible; a bucket with no value is a space.
    """
    if width <= 0:
        return ""
    buckets = _resample_max(values, width)
    present = [value for value in buckets if value is not None]
    if not present:
        return " " * width
    low = min(present) if low is None else low
    high = max(present) if high is None else high
    extent = (high - low) or 1.0
    characters = []
    for value in buckets:
        if value is None:
            characters.append(" ")
            continue
        level = round((min(max(value, low), high) - low) / extent * 7)
        characters.append(SPARK_LEVELS[level])
    return "".join(characters).rjust(width)


def _resample_max(values: Sequence[float | None], width: int) -> list[float | None]:
    if len(values) <= width:
        return list(values)
    buckets: list[float | None] = []
    for index in range(width):
        start = index * len(values) // width
        stop = (index + 1) * len(values) // width
        present = [v for v in values[start:stop] if v is not None]
        buckets.append(max(present) if present else None)
    return buckets


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def format_error_rate(ratio: float | None) -> str:
    """Return an error rate with two decimals, ``0.91%`` against ``8.25%``."""
    if ratio is None or not math.isfinite(ratio):
        return NO_VALUE
    return f"{ratio * 100:.2f}%"


def live_summary(figures: dict[str, Any] | None, window_seconds: float) -> str:
    """Return one version's live figures (``GET /deployments/{name}/live``)."""
    if not figures:
        return ""
    window = (
        f"{window_seconds / 60:g} min"
        if window_seconds >= 60
        else f"{window_seconds:g} s"
    )
    if not figures.get("requests"):
        return f"v{figures.get('version')}: no logged requests in the last {window}"
    parts = [f"{figures['requests']:,} requests"]
    if figures.get("rows") and figures["rows"] != figures["requests"]:
        parts[0] += f" ({figures['rows']:,} rows)"
    if figures.get("labelled"):
        parts.append(
            f"error rate {format_error_rate(figures.get('error_rate'))} of "
            f"{figures['labelled']:,} labelled rows"
        )
    else:
        parts.append("no feedback labels")
    p95 = figures.get("latency_p95_seconds")
    if p95 is not None:
        parts.append(f"p95 {p95 * 1000:.1f} ms")
    if figures.get("server_errors"):
        parts.append(f"{figures['server_errors']:,} server errors")
    return f"v{figures.get('version')}, last {window}: " + ", ".join(parts)
