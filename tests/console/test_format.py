"""Text helpers: ages, bars, sparklines, sizes."""

from __future__ import annotations

import math

import pytest

from console.format import (
    bar,
    format_age,
    format_bytes,
    format_duration,
    format_until,
    meter,
    sparkline,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (0.4, "0s"),
        (59, "59s"),
        (61, "1m"),
        (7200, "2h"),
        (3 * 86400, "3d"),
        (-5, "0s"),
        (math.inf, "never"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(seconds) == text


def test_format_duration_and_until():
    assert format_duration(754) == "12m34s"
    assert format_duration(7260) == "2h01m"
    assert format_until(1000 + 300, 1000) == "in 5m00s"
    assert format_until(900, 1000) == "due"
    assert format_until(None, 1000) == "-"


def test_bar_uses_eighths_and_dots_for_missing():
    assert bar(0.5, 4) == "██  "
    assert bar(1 / 32, 4) == "▏   "
    assert bar(2.0, 3) == "███"
    assert bar(None, 3) == "···"
    assert bar(float("nan"), 3) == "···"


def test_meter_shows_percent_as_text():
    assert meter(0.62, 4).plain == "▕██▌ ▏ 62%"
    assert meter(None, 4).plain == "▕····▏   -"


def test_sparkline_fixed_scale_and_gaps():
    assert sparkline([0.0, 0.5, 1.0, None], 4, 0.0, 1.0) == "▁▅█ "
    assert sparkline([], 3) == "   "
    assert sparkline([None, None], 2) == "  "


def test_sparkline_resamples_by_maximum():
    values = [0.0] * 9 + [1.0] + [0.0] * 10

    assert sparkline(values, 4, 0.0, 1.0) == "▁█▁▁"


def test_format_bytes():
    assert format_bytes(512) == "512B"
    assert format_bytes(3 * 1024**3) == "3.0GiB"
    assert format_bytes(None) == "-"
