"""Plugin discovery through the rigdeck.plugins entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

import plugins
from plugins.datasets.csv_file import CsvDataset
from plugins.gates.builtin import ResidencyGate
from plugins.recipes.tabular_mlp import TabularMLP


def test_builtins_are_registered():
    assert sorted(plugins.installed("dataset")) == ["csv", "river", "sqlite"]
    assert sorted(plugins.installed("recipe")) == ["tabular-mlp"]
    assert sorted(plugins.installed("gate")) == [
        "fairness",
        "metric-threshold",
        "no-regression",
        "residency",
    ]
    assert plugins.load("dataset", "csv") is CsvDataset
    assert plugins.load("recipe", "tabular-mlp") is TabularMLP
    assert plugins.load("gate", "residency") is ResidencyGate


def test_unknown_plugin_lists_installed():
    with pytest.raises(plugins.PluginNotFoundError) as caught:
        plugins.load("recipe", "xgboost")
    assert str(caught.value) == (
        "No recipe plugin named 'xgboost' is installed. Installed recipe plugins: "
        "tabular-mlp."
    )
    assert caught.value.installed == ["tabular-mlp"]


def test_third_party_plugins_are_discovered(fake_plugins: Path):
    from tests.plugins import fake_plugins as module

    assert "slow" in plugins.installed("recipe")
    assert plugins.load("recipe", "slow") is module.SlowRecipe
    assert plugins.load("dataset", "counting") is module.CountingDataset


def test_plugin_of_wrong_class_is_rejected(fake_plugins: Path):
    with pytest.raises(plugins.PluginError) as caught:
        plugins.load("recipe", "not-a-recipe")
    assert str(caught.value) == (
        "The recipe plugin 'not-a-recipe' (tests.plugins.fake_plugins:NotARecipe) is "
        "not "
        "a subclass of plugins.Recipe."
    )


def test_plugin_that_fails_to_import_is_reported(fake_plugins: Path):
    with pytest.raises(plugins.PluginError) as caught:
        plugins.load("recipe", "broken-import")
    assert str(caught.value).startswith(
        "The recipe plugin 'broken-import' (tests.plugins.no_such_module:Recipe) "
        "failed to "
        "import: ModuleNotFoundError:"
    )
