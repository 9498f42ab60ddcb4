"""The fake NVML must match the pynvml names and error codes the probe relies on."""

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pynvml
import pytest

from tests.fakes import fake_nvml

REPO_ROOT = Path(__file__).resolve().parents[3]
PROBE_SOURCES = [
    REPO_ROOT / "agent" / "telemetry" / "gpu.py",
    REPO_ROOT / "agent" / "telemetry" / "_nvml.py",
]


def nvml_names_used_by_probe() -> set[str]:
    names: set[str] = set()
    for path in PROBE_SOURCES:
        source = path.read_text()
        # Attribute access on the module (``nvml.X``, ``self._nvml.X``) and
        # error classes looked up by name (``"NVMLError_X"``).
        names.update(re.findall(r"\b_?nvml\.((?:nvml|NVML)\w*)", source))
        names.update(re.findall(r"\"(NVMLError_\w+)\"", source))
    return names


def test_probe_uses_known_nvml_names():
    names = nvml_names_used_by_probe()

    assert "nvmlInit" in names
    assert "nvmlDeviceGetPowerUsage" in names
    assert "NVMLError_GpuIsLost" in names
    assert "NVMLError_LibRmVersionMismatch" in names


@pytest.mark.parametrize("name", sorted(nvml_names_used_by_probe()))
def test_name_exists_in_pynvml_and_fake(name):
    assert hasattr(pynvml, name), f"pynvml has no {name}"
    assert hasattr(fake_nvml, name), f"the fake NVML has no {name}"


@pytest.mark.parametrize(
    "name",
    sorted(name for name in nvml_names_used_by_probe() if name.startswith("nvml")),
)
def test_function_takes_same_required_arguments(name):
    def required(function):
        return [
            parameter.name
            for parameter in inspect.signature(function).parameters.values()
            if parameter.default is inspect.Parameter.empty
        ]

    assert len(required(getattr(fake_nvml, name))) == len(
        required(getattr(pynvml, name))
    )


@pytest.mark.parametrize(
    "name",
    sorted(name for name in nvml_names_used_by_probe() if name.startswith("NVML_")),
)
def test_constant_has_pynvml_value(name):
    assert getattr(fake_nvml, name) == getattr(pynvml, name)


@pytest.mark.parametrize(
    "name", sorted(name for name in dir(fake_nvml) if name.startswith("NVMLError_"))
)
def test_error_class_has_pynvml_name_and_value(name):
    real_class = getattr(pynvml, name)
    fake_class = getattr(fake_nvml, name)

    assert fake_class().value == real_class().value
    assert issubclass(fake_class, fake_nvml.NVMLError)
    assert str(fake_class()) == str(real_class())


def test_key_error_codes_have_nvml_values():
    assert fake_nvml.NVMLError_NotSupported().value == 3
    assert fake_nvml.NVMLError_DriverNotLoaded().value == 9
    assert fake_nvml.NVMLError_LibraryNotFound().value == 12
    assert fake_nvml.NVMLError_GpuIsLost().value == 15
    assert fake_nvml.NVMLError_LibRmVersionMismatch().value == 18


def test_configure_rejects_unknown_keys():
    with pytest.raises(ValueError, match="powr"):
        fake_nvml.configure({"gpus": [{"powr": 1}]})
    with pytest.raises(ValueError, match="init_eror"):
        fake_nvml.configure({"init_eror": "library_not_found"})
    fake_nvml.configure({})


def read_gpu_count_in_subprocess(environment_value: str) -> str:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.fakes import fake_nvml as nvml; nvml.nvmlInit(); "
            "print(nvml.nvmlDeviceGetCount(), nvml.nvmlDeviceGetName("
            "nvml.nvmlDeviceGetHandleByIndex(1)))",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "RIGDECK_FAKE_NVML": environment_value},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout.strip()


def test_scenario_from_environment_json():
    scenario = {"gpus": [{"name": "A"}, {"name": "NVIDIA H100 80GB HBM3"}]}

    output = read_gpu_count_in_subprocess(json.dumps(scenario))

    assert output == "2 NVIDIA H100 80GB HBM3"


def test_scenario_from_environment_file(tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"gpus": [{}, {"name": "B"}, {}]}))

    output = read_gpu_count_in_subprocess(str(path))

    assert output == "3 B"
