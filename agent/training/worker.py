"""The training worker: ``python -m agent.training.worker SPEC.json``.

The agent starts one per run, in the run's own process group, with its
output going to the run log. It loads the data set, calls the recipe,
seals the artifact with a manifest and writes ``result.json`` last. On
any error it prints the traceback to the run log, appends an ``error``
event with a one-line summary and exits with status 1. Under torchrun
(``WORLD_SIZE`` > 1) only rank 0 writes events, the artifact and the result.

This is the only agent module that may import torch (through the recipe).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from agent.training.events import EventWriter

logger = logging.getLogger("agent.training.worker")

EXIT_FAILED = 1
_SUMMARY_CHARS = 500

# Released when a run fails, so that under RLIMIT_AS the traceback and the
# error event can still be written after an allocation failed.
_RESERVE_BYTES = 4 * 1024 * 1024
_reserve: list[bytearray] = []

# Messages of allocation failures under RLIMIT_AS that do not arrive as
# MemoryError: the dynamic loader's ("failed to map segment from shared
# object", "cannot allocate memory") and C++'s.
_ALLOCATION_FAILURES = (
    "failed to map segment",
    "cannot allocate memory",
    "std::bad_alloc",
)


class _Discard:
    """The event sink of ranks other than 0."""

    def write(self, event: str, **values: Any) -> None:
        pass

    def progress(self, **values: Any) -> None:
        pass

    def metric(self, name: str, value: float) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m agent.training.worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s rank{rank} %(message)s",
    )
    events = EventWriter(Path(spec["events_path"])) if rank == 0 else _Discard()
    phase = ["starting"]
    try:
        _limit_memory(spec["resources"].get("memory_limit_bytes"))
        _run(spec, events, rank, world_size, phase)
    except BaseException as error:  # MemoryError and KeyboardInterrupt included
        _reserve.clear()
        traceback.print_exc()
        try:
            summary = _summarise(error, phase[0], spec)
        except Exception:  # e.g. another MemoryError, after the traceback above
            summary = f"{type(error).__name__} while {phase[0]}."
        print(f"run failed: {summary}", file=sys.stderr, flush=True)
        events.write("error", summary=summary)
        return EXIT_FAILED
    return 0


def _run(spec: dict, events, rank: int, world_size: int, phase: list[str]) -> None:
    import plugins
    from agent.training.data import feedback_rows, load_tabular

    dataset_spec, recipe_spec = spec["dataset"], spec["recipe"]
    logger.info(
        "run %s of model %s: recipe %s on dataset %s (rank %s of %s, device %s)",
        spec["run_id"],
        spec["model"],
        recipe_spec["plugin"],
        dataset_spec["plugin"],
        rank,
        world_size,
        _device(spec),
    )

    phase[0] = "loading the data"
    dataset = plugins.load("dataset", dataset_spec["plugin"])(dataset_spec["options"])
    feedback = None
    if dataset_spec["include_feedback"]:

        def feedback(features: list[str]) -> list[dict[str, Any]]:
            return feedback_rows(
                Path(spec["store_path"]),
                spec["model"],
                features,
                dataset_spec["sensitive_attribute"],
                dataset_spec["target"],
            )

    data = load_tabular(
        dataset,
        features=dataset_spec["features"],
        target=dataset_spec["target"],
        sensitive=dataset_spec["sensitive_attribute"],
        feedback=feedback,
    )
    logger.info(
        "loaded %s rows (%s from feedback), sha256 %s",
        data.row_count,
        data.feedback_rows,
        data.sha256,
    )
    events.write(
        "data",
        sha256=data.sha256,
        rows=data.row_count,
        feedback_rows=data.feedback_rows,
    )

    phase[0] = f"training with the {recipe_spec['plugin']} recipe"
    started = time.monotonic()
    recipe = plugins.load("recipe", recipe_spec["plugin"])()
    job = plugins.TrainingJob(
        run_id=spec["run_id"],
        model=spec["model"],
        data=data,
        params=recipe_spec["params"],
        device=_device(spec),
        artifact_dir=Path(spec["artifact_dir"]),
        reporter=events,
        rank=rank,
        world_size=world_size,
    )
    result = recipe.train(job)
    logger.info("training took %.1f s", time.monotonic() - started)
    if rank != 0:
        return

    phase[0] = "sealing the artifact"
    _write_result(spec, job, data, result)


def _write_result(spec: dict, job, data, result) -> None:
    from plugins.stats import feature_statistics
    from store.artifacts import write_atomic, write_manifest

    if result.weights_file not in job.written:
        raise RuntimeError(
            f"The recipe returned weights_file {result.weights_file!r} but wrote "
            f"{job.written or 'no files'} through job.write_artifact."
        )
    manifest = write_manifest(job.artifact_dir, job.written)
    rows = (
        data.features
        if result.reference_rows is None
        else data.features[list(result.reference_rows)]
    )
    body = {
        "metrics": _json_safe(result.metrics),
        "weights_file": result.weights_file,
        "artifact_sha256": manifest.sha256(result.weights_file),
        "files": {name: entry.sha256 for name, entry in manifest.files.items()},
        "data_sha256": data.sha256,
        "rows": data.row_count,
        "feedback_rows": data.feedback_rows,
        "features": data.feature_names,
        "target": data.target_name,
        "reference": feature_statistics(rows, data.feature_names),
        "software": _software(),
        "code_revision": code_revision(),
        "hostname": socket.gethostname(),
        "finished_at": time.time(),
    }
    write_atomic(
        spec["result_path"], json.dumps(body, indent=2, allow_nan=False).encode()
    )


def _device(spec: dict) -> str:
    return "cuda" if spec["resources"]["gpus"] > 0 else "cpu"


def _limit_memory(limit_bytes: int | None) -> None:
    if limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        _reserve.append(bytearray(_RESERVE_BYTES))


def _summarise(error: BaseException, phase: str, spec: dict) -> str:
    """Return the one-line reason a run failed, for its ``error`` event."""
    # Looked up rather than imported, because the import may be what failed.
    plugins_interface = sys.modules.get("plugins.interface")
    plugin_error = getattr(plugins_interface, "PluginError", None)
    limit = spec["resources"].get("memory_limit_bytes")
    allocation_failure = _allocation_failure(error) if limit else None
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        summary = f"The GPU ran out of memory while {phase}: {_first_line(error)}"
    elif isinstance(error, MemoryError):
        summary = _out_of_memory(phase, limit)
    elif allocation_failure is not None:
        detail = _first_line(allocation_failure)
        if detail[-1] not in ".!?":
            detail += "."
        summary = (
            f"{type(error).__name__} while {phase}: {detail} The run probably "
            f"exceeded resources.memory_limit_bytes ({limit} bytes); raise that "
            "limit."
        )
    elif plugin_error is not None and isinstance(error, plugin_error):
        summary = _first_line(error)
    elif isinstance(error, KeyboardInterrupt | SystemExit):
        summary = f"The worker was interrupted while {phase}."
    else:
        summary = f"{type(error).__name__} while {phase}: {_first_line(error)}"
    return summary[:_SUMMARY_CHARS]


def _out_of_memory(phase: str, limit: int | None) -> str:
    if limit:
        return (
            f"The run ran out of memory while {phase}; it probably exceeded "
            f"resources.memory_limit_bytes ({limit} bytes). Raise that limit, or "
            "lower max_rows or batch_size."
        )
    return (
        f"The run ran out of memory while {phase}. Lower max_rows or batch_size, or "
        "give the run more memory."
    )


def _allocation_failure(error: BaseException) -> BaseException | None:
    """Return the error, or its cause, that reads like a failed allocation.

    Under RLIMIT_AS, loading a shared library fails with ImportError (numpy
    wraps the loader's message in a long banner and keeps it as the
    cause), and C++ code fails with std::bad_alloc. Any other ImportError,
    but not ModuleNotFoundError, counts too, because that is how a library
    too large for the limit fails to load.
    """
    seen: set[int] = set()
    deepest: BaseException | None = None
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if (
            isinstance(current, MemoryError)
            or (isinstance(current, OSError) and current.errno == errno.ENOMEM)
            or any(failure in text for failure in _ALLOCATION_FAILURES)
        ):
            deepest = current  # the innermost has the message without wrappers
        current = current.__cause__ or current.__context__
    if deepest is not None:
        return deepest
    if isinstance(error, ImportError) and not isinstance(error, ModuleNotFoundError):
        return error
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _software() -> dict[str, str | None]:
    from agent.versions import package_version

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "rigdeck": package_version("rigdeck"),
        "numpy": package_version("numpy"),
        "torch": None,
        "cuda": None,
    }
    torch = sys.modules.get("torch")  # only when the recipe used it
    if torch is not None:
        versions["torch"] = torch.__version__
        versions["cuda"] = torch.version.cuda
    return versions


def code_revision() -> str | None:
    """Return the git commit of the rigdeck source, with ``+dirty`` if it has edits.

    None when rigdeck is not run from a git checkout (an installed wheel).
    """
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def _json_safe(value: Any) -> Any:
    """Convert numpy scalars to Python and non-finite floats to None."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    sys.exit(main())
