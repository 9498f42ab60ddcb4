"""Install ``fake_plugins`` as a third party would: a dist-info with entry points."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ENTRY_POINTS = {
    "recipe.explode": "tests.plugins.fake_plugins:ExplodingRecipe",
    "recipe.memory-hog": "tests.plugins.fake_plugins:MemoryHogRecipe",
    "recipe.slow": "tests.plugins.fake_plugins:SlowRecipe",
    "recipe.fixed-metrics": "tests.plugins.fake_plugins:FixedMetricsRecipe",
    "recipe.forgetful": "tests.plugins.fake_plugins:ForgetfulRecipe",
    "recipe.environment": "tests.plugins.fake_plugins:EnvironmentRecipe",
    "recipe.not-a-recipe": "tests.plugins.fake_plugins:NotARecipe",
    "recipe.broken-import": "tests.plugins.no_such_module:Recipe",
    "gate.explode": "tests.plugins.fake_plugins:RaisingGate",
    "dataset.counting": "tests.plugins.fake_plugins:CountingDataset",
}


def write_site(directory: Path) -> Path:
    """Write ``rigdeck_test_plugins-0.0.0.dist-info`` under ``directory``; return it."""
    info = directory / "rigdeck_test_plugins-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rigdeck-test-plugins\nVersion: 0.0.0\n"
    )
    lines = "".join(f"{name} = {value}\n" for name, value in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[rigdeck.plugins]\n{lines}")
    return directory


def python_path(site: Path) -> str:
    """PYTHONPATH for a subprocess that should see the fake plugins."""
    parts = [str(site), str(REPO), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(part for part in parts if part)
