"""Decide how a run ended, and word it for the run's error, the run log and alerts."""

from __future__ import annotations

import signal

from store.runs import RunState

STOP_CANCEL = "cancel"
STOP_TIMEOUT = "timeout"
STOP_GPU_LOST = "gpu_lost"
STOP_SHUTDOWN = "shutdown"


def decide(
    stop_reason: str | None,
    stop_detail: str | None,
    returncode: int,
    error_summary: str | None,
    memory_limit_bytes: int | None,
) -> tuple[RunState, str | None]:
    """Return the end state of a run whose worker exited, and its error text.

    A stop the agent requested decides the state whatever the exit status,
    because the worker exits non-zero when it is signalled.
    """
    if stop_reason == STOP_CANCEL:
        return RunState.CANCELLED, stop_detail
    if stop_reason == STOP_TIMEOUT:
        return RunState.TIMED_OUT, f"The run was ended because {stop_detail}."
    if stop_reason == STOP_SHUTDOWN:
        return RunState.INTERRUPTED, "The agent stopped while the run was running."
    if stop_reason == STOP_GPU_LOST:
        return RunState.FAILED, f"The run was ended because {stop_detail}."
    if returncode == 0:
        return RunState.SUCCEEDED, None
    return RunState.FAILED, error_summary or exit_text(returncode, memory_limit_bytes)


def exit_text(returncode: int, memory_limit_bytes: int | None) -> str:
    """Word a worker exit that left no error summary, with what to check."""
    if returncode < 0:
        sentences = [
            f"The worker was killed by {signal_name(-returncode)} and left no error "
            "summary."
        ]
    else:
        sentences = [
            f"The worker exited with status {returncode} and left no error summary."
        ]
    if returncode == -signal.SIGKILL:
        sentences.append(
            "The kernel's out-of-memory killer sends SIGKILL; check `dmesg` and the "
            "run's memory use."
        )
    if memory_limit_bytes:
        # Under RLIMIT_AS, an uncaught std::bad_alloc aborts the worker, and
        # Python can fail again while it reports the first MemoryError.
        sentences.append(
            "It may have exceeded resources.memory_limit_bytes "
            f"({memory_limit_bytes} bytes), e.g. with std::bad_alloc; if the run log "
            "shows an allocation failure, raise that limit."
        )
    sentences.append("See the run log.")
    return " ".join(sentences)


def signal_name(number: int) -> str:
    """Return ``SIGTERM`` for 15, or ``signal 35`` for a number without a name.

    ``signal.Signals`` names only the standard signals and SIGRTMIN and
    SIGRTMAX, not the real-time signals between them.
    """
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def cancel_text(actor: str, reason: str | None, *, started: bool) -> str:
    """Word a cancel, e.g. ``Cancelled by bob: wrong data``."""
    when = "" if started else " before it started"
    return f"Cancelled by {actor}{when}" + (f": {reason}" if reason else ".")


def sentence(text: str) -> str:
    """Return ``text`` with a capital first letter and closing punctuation."""
    text = text.strip()
    if not text:
        return text
    if text[-1] not in ".!?":
        text += "."
    return text[0].upper() + text[1:]
