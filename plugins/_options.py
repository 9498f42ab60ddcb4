"""Option checks shared by the built-in plugins; errors name the key and value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugins.interface import PluginConfigError


def check_keys(
    where: str,
    options: Mapping[str, Any],
    *,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> None:
    """Raise PluginConfigError for a missing required key or an unknown key."""
    for key in required:
        if key not in options:
            raise PluginConfigError(f"{where}: the option {key!r} is required.")
    known = set(required) | set(optional)
    for key in options:
        if key not in known:
            raise PluginConfigError(
                f"{where}: unknown option {key!r}; known options: "
                f"{', '.join(sorted(known))}."
            )


def check_type(
    where: str, key: str, value: Any, expected: type | tuple[type, ...]
) -> None:
    """Raise PluginConfigError unless ``value`` has the type; bools are not numbers."""
    numeric = expected in (int, float) or (
        isinstance(expected, tuple) and int in expected
    )
    if (numeric and isinstance(value, bool)) or not isinstance(value, expected):
        names = (
            " or ".join(t.__name__ for t in expected)
            if isinstance(expected, tuple)
            else expected.__name__
        )
        article = "an" if names[0] in "aeiou" else "a"
        raise PluginConfigError(
            f"{where}: {key} must be {article} {names} (got {value!r})."
        )
