"""Run every benchmark in bench/ in turn and report which ones missed a target.

Each benchmark prints its own table (figure, baseline measured in the same
run, ratio, target) and exits non-zero when it misses a target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    failed = []
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode:
            failed.append(script.name)
    met = len(scripts) - len(failed)
    print(f"\n{met} of {len(scripts)} benchmarks met their targets.")
    if failed:
        print(f"Missed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
