"""The data-directory lock: flock held by one agent, released by the kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

from agent.errors import LockError
from agent.lock import DataDirLock


def test_second_lock_names_holder_pid(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "data")
    first.acquire()

    with pytest.raises(LockError) as raised:
        DataDirLock(tmp_path / "data").acquire()

    first.release()
    assert raised.value.pid == os.getpid()
    assert raised.value.data_dir == str(tmp_path / "data")
    assert f"(process {os.getpid()})" in str(raised.value)


def test_lock_is_free_after_release(tmp_path: Path) -> None:
    with DataDirLock(tmp_path / "data"):
        pass

    with DataDirLock(tmp_path / "data") as again:
        assert again.path.read_text() == f"{os.getpid()}\n"


def test_lock_is_free_after_holder_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from agent.lock import DataDirLock; "
            "DataDirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); "
            "sys.stdin.read()",
            str(data_dir),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(LockError) as raised:
        DataDirLock(data_dir).acquire()
    assert raised.value.pid == holder.pid

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(30)
    holder.stdin.close()
    holder.stdout.close()

    with DataDirLock(data_dir) as lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"
