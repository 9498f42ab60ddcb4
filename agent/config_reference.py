"""Render docs/configuration.md from the configuration models themselves.

The reference is generated, and a test checks the committed page against
this output, so a key cannot be added, renamed or given a new default
without the docs following. Regenerate with
``python -m agent.config_reference > docs/configuration.md``.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from agent.config import AgentConfig

HEADER = """# Configuration reference

`agent.toml` is read when the agent starts; an unknown key or an invalid
value stops it with an error naming the file and the key. Relative paths
are resolved against the directory of `agent.toml`. `rigdeck-agent init
DIR` writes a commented file with the defaults.

This page is generated from the code by
`python -m agent.config_reference > docs/configuration.md`.
"""


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """Return the model class inside ``annotation`` and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for argument in typing.get_args(annotation):
        model, _ = _nested_model(argument)
        if model is not None:
            return model, typing.get_origin(annotation) is list
    return None, False


def _default(field: Any) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        if (
            callable(field.default_factory)
            and field.default_factory.__name__ == "gethostname"
        ):
            return "the machine's hostname"
        if value == []:
            return "`[]`"
        if value == {}:
            return "`{}`"
        return f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "none"
    if isinstance(field.default, Path):
        return f"`{str(field.default)!r}`"
    return f"`{field.default!r}`"


def _type_name(annotation: Any) -> str:
    text = str(annotation) if typing.get_args(annotation) else annotation.__name__
    text = (
        text.replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")
    )
    return text.replace("Path", "path").replace(" | ", " or ")


def _render_section(
    path: str, is_list: bool, model: type[BaseModel], out: list[str]
) -> None:
    rows: list[str] = []
    nested: list[tuple[str, bool, type[BaseModel]]] = []
    for key, field in model.model_fields.items():
        if field.exclude:
            continue
        submodel, sub_is_list = _nested_model(field.annotation)
        if submodel is not None:
            nested.append((f"{path}.{key}" if path else key, sub_is_list, submodel))
            continue
        description = (field.description or "").replace("|", "\\|")
        kind = _type_name(field.annotation)
        rows.append(f"| `{key}` | {kind} | {_default(field)} | {description} |")
    if rows:
        heading = f"[[{path}]]" if is_list else f"[{path}]"
        out.append(f"\n## `{heading}`\n")
        out.append("| key | type | default | meaning |")
        out.append("| --- | --- | --- | --- |")
        out.extend(rows)
    for name, sub_is_list, submodel in nested:
        _render_section(name, sub_is_list, submodel, out)


def render_reference() -> str:
    """Return the whole configuration reference as Markdown."""
    out = [HEADER]
    _render_section("", False, AgentConfig, out)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
