"""Software versions, read from package metadata so nothing heavy is imported."""

from __future__ import annotations

import platform
from importlib import metadata


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, str | None]:
    """rigdeck and the libraries that matter when comparing hosts."""
    return {
        "rigdeck": package_version("rigdeck"),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "river": package_version("river"),
        "nvidia_ml_py": package_version("nvidia-ml-py"),
    }
