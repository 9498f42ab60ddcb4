"""Import the scripts in bench/, which is not a package, by file path.

bench/ is not put on sys.path because its scripts have names (drift,
serving) that would shadow other imports for the whole test session.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from harness import REPO

BENCH_DIR = REPO / "bench"


def load_bench_module(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` once, as module ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# run_all.py imports _results by name, so _results is loaded first.
results = load_bench_module("_results")
run_all = load_bench_module("run_all")
