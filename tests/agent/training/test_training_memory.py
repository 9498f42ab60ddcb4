"""Failures under resources.memory_limit_bytes: summaries that point at the limit."""

from __future__ import annotations

import errno
import os
import signal

import pytest
from harness import wait_for
from training_helpers import model_toml

from agent.training.worker import _summarise
from store import runs as run_rows

LIMIT = 805_306_368
PHASE = "training with the tabular-mlp recipe"
FINAL = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")


def _spec(limit: int | None) -> dict:
    return {"resources": {"gpus": 0, "memory_limit_bytes": limit}}


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as cause:
            raise outer from cause
    except BaseException as error:
        return error


NUMPY_BANNER = (
    "\n\nIMPORTANT: PLEASE READ THIS FOR ADVICE ON HOW TO SOLVE THIS ISSUE!\n\n"
    "Importing the numpy C-extensions failed."
)


def test_memory_error_under_limit_names_limit():
    assert _summarise(MemoryError(), PHASE, _spec(LIMIT)) == (
        f"The run ran out of memory while {PHASE}; it probably exceeded "
        f"resources.memory_limit_bytes ({LIMIT} bytes). Raise that limit, or lower "
        "max_rows or batch_size."
    )


def test_memory_error_without_limit_keeps_advice():
    assert _summarise(MemoryError(), PHASE, _spec(None)) == (
        f"The run ran out of memory while {PHASE}. Lower max_rows or batch_size, or "
        "give the run more memory."
    )


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (
            ImportError("libtorch_cpu.so: failed to map segment from shared object"),
            "ImportError while training with the tabular-mlp recipe: libtorch_cpu.so: "
            "failed to map segment from shared object",
        ),
        (
            _chained(
                ImportError(NUMPY_BANNER),
                ImportError(
                    "libgfortran.so.5: failed to map segment from shared object"
                ),
            ),
            "ImportError while training with the tabular-mlp recipe: "
            "libgfortran.so.5: failed to map segment from shared object",
        ),
        (
            OSError(errno.ENOMEM, "Cannot allocate memory"),
            "OSError while training with the tabular-mlp recipe: [Errno 12] Cannot "
            "allocate memory",
        ),
        (
            RuntimeError("std::bad_alloc"),
            "RuntimeError while training with the tabular-mlp recipe: std::bad_alloc",
        ),
        (
            _chained(
                ImportError(
                    NUMPY_BANNER + "\nOriginal error was: libgfortran.so.5: failed "
                    "to map segment from shared object"
                ),
                ImportError(
                    "libgfortran.so.5: failed to map segment from shared object"
                ),
            ),
            "ImportError while training with the tabular-mlp recipe: "
            "libgfortran.so.5: failed to map segment from shared object",
        ),
        (
            ImportError(NUMPY_BANNER),
            "ImportError while training with the tabular-mlp recipe: IMPORTANT: PLEASE "
            "READ THIS FOR ADVICE ON HOW TO SOLVE THIS ISSUE!",
        ),
    ],
    ids=[
        "map-segment",
        "numpy-banner-chain",
        "enomem",
        "bad-alloc",
        "numpy-banner-quoting-cause",
        "import-error",
    ],
)
def test_allocation_failure_under_limit_names_limit(error: BaseException, detail: str):
    if detail[-1] not in ".!?":
        detail += "."
    assert _summarise(error, PHASE, _spec(LIMIT)) == (
        f"{detail} The run probably exceeded resources.memory_limit_bytes "
        f"({LIMIT} bytes); raise that limit."
    )


def test_allocation_failure_without_limit_is_plain():
    error = ImportError("libtorch_cpu.so: failed to map segment from shared object")
    assert _summarise(error, PHASE, _spec(None)) == (
        f"ImportError while {PHASE}: libtorch_cpu.so: failed to map segment from "
        "shared object"
    )


def test_missing_module_under_limit_is_plain():
    error = ModuleNotFoundError("No module named 'xgboost'")
    assert _summarise(error, PHASE, _spec(LIMIT)) == (
        f"ModuleNotFoundError while {PHASE}: No module named 'xgboost'"
    )


def test_cuda_oom_ignores_memory_limit():
    class OutOfMemoryError(RuntimeError):
        pass

    error = OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert _summarise(error, PHASE, _spec(LIMIT)) == (
        f"The GPU ran out of memory while {PHASE}: CUDA out of memory. Tried to "
        "allocate 2.00 GiB"
    )


def _wait_progress(built, run_id: int) -> dict:
    def progressing():
        run = run_rows.get_run(built.store.db, run_id)
        return run if run["state"] == "running" and run["progress"] else None

    return wait_for(progressing, timeout=30, what=f"progress of run {run_id}")


def _wait_final(built, run_id: int) -> dict:
    def finished():
        run = run_rows.get_run(built.store.db, run_id)
        return run if run["state"] in FINAL else None

    return wait_for(finished, timeout=60, what=f"run {run_id} to finish")


def test_abort_under_limit_hints_at_limit(harness):
    # A C++ allocation failure (std::bad_alloc) aborts the worker before it
    # can write a summary; SIGABRT from outside has the same effect.
    built = harness(
        model_toml("slow", "slow", resources=f"memory_limit_bytes = {LIMIT}")
    )
    run = built.runs.trigger("slow", actor="alice")
    running = _wait_progress(built, run["id"])
    os.kill(running["pid"], signal.SIGABRT)

    done = _wait_final(built, run["id"])
    assert done["state"] == "failed"
    assert done["exit_code"] == -signal.SIGABRT
    assert done["error"] == (
        "The worker was killed by SIGABRT and left no error summary. It may have "
        f"exceeded resources.memory_limit_bytes ({LIMIT} bytes), e.g. with "
        "std::bad_alloc; if the run log shows an allocation failure, raise that "
        "limit. See the run log."
    )
