"""The control process imports training code without torch or river."""

from __future__ import annotations

import json
import subprocess
import sys

from training_helpers import REPO

CHECK = """
import json, sys
import agent.daemon, agent.training, agent.api.routes_training
import plugins
from agent.config import parse_config
from pathlib import Path
raw = {"models": [{
    "name": "shuttle",
    "dataset": {"plugin": "river", "options": {"name": "Shuttle"}},
    "recipe": {"plugin": "tabular-mlp"},
    "gates": [{"plugin": "residency"}],
}]}
parse_config(raw, Path("agent.toml"))
for kind in ("dataset", "recipe", "gate"):
    for name in plugins.installed(kind):
        plugins.load(kind, name)
heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "river")]
print(json.dumps(sorted(heavy)))
"""


def test_control_process_imports_no_torch_or_river():
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
