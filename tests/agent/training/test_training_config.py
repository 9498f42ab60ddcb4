"""[[models]] in agent.toml: typed sections, plugin checks, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import model_toml, write_agent_config

from agent.config import load_config
from agent.errors import ConfigError

SHUTTLE = 'plugin = "river"\noptions = { name = "Shuttle" }'


def _load(tmp_path: Path, body: str):
    return load_config(write_agent_config(tmp_path, body))


def _problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    return caught.value.problems


def test_defaults_are_filled_in(tmp_path: Path):
    config = _load(tmp_path, model_toml("shuttle", "tabular-mlp", dataset=SHUTTLE))
    model = config.model("shuttle")
    assert model.dataset.target == "anomaly"
    assert model.dataset.features is None
    assert model.dataset.regions == []
    assert model.recipe.params["hidden_layers"] == [64, 32]
    assert model.recipe.params["seed"] == 0
    assert model.schedule.cron is None
    assert model.schedule.timezone == "UTC"
    assert model.schedule.misfire_grace_seconds is None
    assert model.resources.gpus == 0
    assert model.resources.budget_seconds == 3600.0
    assert config.training.max_concurrent_runs == 1
    assert config.training.cancel_grace_seconds == 2.0


def test_csv_path_is_resolved_against_config_dir(tmp_path: Path):
    (tmp_path / "data.csv").write_text("x,y\n1,0\n")
    body = model_toml(
        "tiny",
        "tabular-mlp",
        dataset='plugin = "csv"\noptions = { path = "data.csv" }\ntarget = "y"',
    )
    config = _load(tmp_path, body)
    assert config.model("tiny").dataset.options == {
        "path": str((tmp_path / "data.csv").resolve()),
        "delimiter": ",",
    }


def test_unknown_recipe_lists_installed(tmp_path: Path):
    problems = _problems(tmp_path, model_toml("m", "tabular-mpl", dataset=SHUTTLE))
    assert problems == [
        "models.0.recipe: No recipe plugin named 'tabular-mpl' is installed. "
        "Installed recipe plugins: tabular-mlp."
    ]


def test_unknown_dataset_lists_installed(tmp_path: Path):
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset='plugin = "parquet"')
    )
    assert problems == [
        "models.0.dataset: No dataset plugin named 'parquet' is installed. "
        "Installed dataset plugins: csv, river, sqlite."
    ]


def test_unknown_gate_lists_installed(tmp_path: Path):
    gates = '[[models.gates]]\nplugin = "latency"'
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, gates=gates)
    )
    assert problems == [
        "models.0.gates.0: No gate plugin named 'latency' is installed. Installed gate "
        "plugins: fairness, metric-threshold, no-regression, residency."
    ]


def test_third_party_plugins_are_listed(tmp_path: Path, fake_plugins: Path):
    problems = _problems(tmp_path, model_toml("m", "nope", dataset=SHUTTLE))
    assert "explode, fixed-metrics, forgetful" in problems[0]
    assert "tabular-mlp" in problems[0]


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("params = { hidden_layers = [] }", "hidden_layers must be a list of 1 to 16"),
        (
            'params = { activation = "swish" }',
            "activation must be one of relu, gelu, tanh",
        ),
        ("params = { learning_rate = 0 }", "learning_rate must be in (0.0, 10.0]"),
        ("params = { batch_size = 0 }", "batch_size must be at least 1"),
        ("params = { epochs = 3 }", "unknown parameter 'epochs'"),
        (
            "params = { validation_fraction = 1.0 }",
            "validation_fraction must be in (0.0, 1.0)",
        ),
        ("params = { max_epochs = true }", "max_epochs must be an int (got True)"),
    ],
)
def test_invalid_recipe_params(tmp_path: Path, fragment: str, expected: str):
    body = model_toml(
        "m", "tabular-mlp", dataset=SHUTTLE, params=fragment.split(" = ", 1)[1]
    )
    problems = _problems(tmp_path, body)
    assert len(problems) == 1
    assert problems[0].startswith("models.0.recipe: tabular-mlp: ")
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ('cron = "0 3 * *"', "schedule: invalid cron expression '0 3 * *'"),
        (
            'cron = "0 3 * * *"\ninterval_seconds = 60',
            "set cron or interval_seconds, not both",
        ),
        ('timezone = "Mars/Olympus"', "unknown time zone 'Mars/Olympus'"),
        (
            "interval_seconds = 0",
            "interval_seconds: Input should be greater than or equal to 1",
        ),
        (
            "misfire_grace_seconds = 0",
            "misfire_grace_seconds: Input should be greater than or equal to 1",
        ),
    ],
)
def test_invalid_schedule(tmp_path: Path, schedule: str, expected: str):
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, schedule=schedule)
    )
    assert len(problems) == 1
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.01", "Input should be greater than or equal to 1 (got 0.01)"),
        ("0.999", "Input should be greater than or equal to 1 (got 0.999)"),
        ("inf", "Input should be a finite number (got inf)"),
        ("nan", "Input should be a finite number (got nan)"),
        ("1e300", "Input should be less than or equal to 31622400 (got 1e+300)"),
        ("31622401", "Input should be less than or equal to 31622400 (got 31622401)"),
    ],
)
def test_interval_seconds_bounds(tmp_path: Path, value: str, expected: str):
    schedule = f"interval_seconds = {value}"
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, schedule=schedule)
    )
    assert problems == [f"models.0.schedule.interval_seconds: {expected}"]


@pytest.mark.parametrize("value", ["1", "31622400"])
def test_interval_seconds_limits_are_accepted(tmp_path: Path, value: str):
    schedule = f"interval_seconds = {value}"
    config = _load(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, schedule=schedule)
    )
    assert config.model("m").schedule.interval_seconds == float(value)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            "budget_seconds = inf",
            "models.0.resources.budget_seconds: Input should be a finite number "
            "(got inf)",
        ),
        (
            "budget_seconds = 2592001",
            "models.0.resources.budget_seconds: Input should be less than or equal "
            "to 2592000 (got 2592001)",
        ),
        (
            "budget_seconds = 0",
            "models.0.resources.budget_seconds: Input should be greater than 0 (got 0)",
        ),
        (
            "memory_limit_bytes = 536870912",
            "models.0.resources.memory_limit_bytes: Input should be greater than or "
            "equal to 805306368 (got 536870912)",
        ),
        (
            "memory_limit_bytes = 1125899906842625",
            "models.0.resources.memory_limit_bytes: Input should be less than or "
            "equal to 1125899906842624 (got 1125899906842625)",
        ),
    ],
)
def test_invalid_resources(tmp_path: Path, resources: str, expected: str):
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, resources=resources)
    )
    assert problems == [expected]


def test_resource_limits_are_accepted(tmp_path: Path):
    resources = "budget_seconds = 2592000\nmemory_limit_bytes = 805306368"
    config = _load(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, resources=resources)
    )
    assert config.model("m").resources.budget_seconds == 2592000.0
    assert config.model("m").resources.memory_limit_bytes == 805306368


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        (
            'plugin = "river"\noptions = { name = "Higgs" }',
            "'Higgs' is not a data set shipped with river",
        ),
        (
            'plugin = "river"\noptions = {}',
            "river dataset: the option 'name' is required",
        ),
        (
            'plugin = "csv"\noptions = { path = "a.csv" }',
            "the csv dataset has no default target; set target",
        ),
        (
            'plugin = "csv"\noptions = { path = "a.csv", sep = ";" }\ntarget = "y"',
            "unknown option 'sep'",
        ),
        (
            'plugin = "sqlite"\noptions = { path = "a.db", table = "x; drop" }\n'
            'target = "y"',
            "table must be a plain SQL identifier",
        ),
        (
            SHUTTLE + '\nfeatures = ["f1", "anomaly"]',
            "the target 'anomaly' is also listed in features",
        ),
    ],
)
def test_invalid_dataset(tmp_path: Path, dataset: str, expected: str):
    (tmp_path / "a.csv").write_text("x,y\n1,0\n")
    (tmp_path / "a.db").touch()
    problems = _problems(tmp_path, model_toml("m", "tabular-mlp", dataset=dataset))
    assert len(problems) == 1
    assert problems[0].startswith("models.0.dataset: ")
    assert expected in problems[0]


@pytest.mark.parametrize(
    "dataset",
    [
        'plugin = "csv"\noptions = { path = "missing.csv" }\ntarget = "y"',
        'plugin = "sqlite"\noptions = { path = "missing.db", table = "t" }\n'
        'target = "y"',
    ],
    ids=["csv", "sqlite"],
)
def test_missing_dataset_file_names_key(tmp_path: Path, dataset: str):
    body = model_toml("present", "tabular-mlp", dataset=SHUTTLE) + model_toml(
        "absent", "tabular-mlp", dataset=dataset
    )
    name = dataset.split('"')[3]
    problems = _problems(tmp_path, body)
    assert problems == [
        f"models.1.dataset.options.path: the file {(tmp_path / name).resolve()} "
        "does not exist; create it, or correct the path, which is resolved against "
        f"the directory of agent.toml (got {name!r})"
    ]


def test_dataset_path_to_directory_names_key(tmp_path: Path):
    (tmp_path / "folder.csv").mkdir()
    dataset = 'plugin = "csv"\noptions = { path = "folder.csv" }\ntarget = "y"'
    problems = _problems(tmp_path, model_toml("m", "tabular-mlp", dataset=dataset))
    assert problems == [
        f"models.0.dataset.options.path: {(tmp_path / 'folder.csv').resolve()} is a "
        "directory, not a file (got 'folder.csv')"
    ]


def test_invalid_gate_options(tmp_path: Path):
    gates = '[[models.gates]]\nplugin = "metric-threshold"\n'
    gates += 'options = { metric = "accuracy" }'
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, gates=gates)
    )
    assert problems == [
        "models.0.gates.0: metric-threshold gate: set min, max or both for 'accuracy'."
    ]


@pytest.mark.parametrize("name", ["../etc", "a/b", "a.b", "-x", ""])
def test_model_name_must_be_slug(tmp_path: Path, name: str):
    problems = _problems(tmp_path, model_toml(name, "tabular-mlp", dataset=SHUTTLE))
    assert len(problems) == 1
    assert problems[0].startswith("models.0.name: String should match pattern")


def test_duplicate_model_names(tmp_path: Path):
    body = model_toml("m", "tabular-mlp", dataset=SHUTTLE) * 2
    problems = _problems(tmp_path, body)
    assert problems == ["(top level): model names must be unique; repeated: m"]


def test_gpu_count_is_bounded(tmp_path: Path):
    problems = _problems(
        tmp_path, model_toml("m", "tabular-mlp", dataset=SHUTTLE, resources="gpus = -1")
    )
    assert problems == [
        "models.0.resources.gpus: Input should be greater than or equal to 0 (got -1)"
    ]
