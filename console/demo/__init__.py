"""``rigdeck demo``: two local agents in a temporary directory, and the loop on them.

``fleet`` starts the agents, ``loop`` runs the demo's stages over their
HTTP APIs, ``replay`` sends them live traffic, and ``people`` acts for
the approver. ``run_demo`` runs the loop under the console,
``run_headless`` without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from console.config import AgentEntry
from console.demo.fleet import EXAMPLE_PAIR, DemoAgent, DemoFleet

__all__ = ["DemoAgent", "DemoFleet", "run_demo", "run_headless"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# How long the UI demo's notification of a step for the user stays; the
# banner keeps the step until it is done.
TOAST_SECONDS = 8


def run_demo(keep: bool = False) -> None:
    """Start the two demo agents, open the console on them, clean up afterwards."""
    from console.demo.loop import DemoLoop
    from console.demo.people import WaitForUser

    workdir = Path(tempfile.mkdtemp(prefix="rigdeck-demo-"))
    fleet = DemoFleet(workdir)
    loop = None
    try:
        fleet.start()
        app = _demo_app(fleet.entries())
        host_a, host_b = fleet.hosts()
        loop = DemoLoop(
            host_a, host_b, WaitForUser(app.instruct), app.show, console=True
        )
        app.loop = loop
        app.run()
    finally:
        # A closed terminal can send SIGHUP more than once. The agents must
        # stop and the directory must go all the same.
        for sig in (*STOP_SIGNALS, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if loop is not None:
            for replay in loop.replays:
                replay.kill()
        fleet.stop()
        _clean_up(workdir, keep)
        _say("Stopped the demo agents.")


def run_headless(keep: bool = False, examples: tuple[Path, Path] = EXAMPLE_PAIR) -> int:
    """Run the demo loop with no UI; print each stage and the summary.

    SIGTERM and SIGHUP stop it as Ctrl-C does: the agents are stopped and
    the directory removed. A failed demo keeps its directory for its logs.

    Returns:
        0 when every stage completed, else 1; 130 when interrupted.
    """
    from console.demo.loop import DemoLoop
    from console.demo.people import ApproverBot

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="rigdeck-demo-"))
    fleet = DemoFleet(workdir, examples)
    status = 1

    def say(message: str) -> None:
        print(message, flush=True)

    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    try:
        say(f"Starting two agents in {workdir} ...")
        fleet.start()
        say(f"{time.monotonic() - started:6.1f} s  agents up")
        host_a, host_b = fleet.hosts()
        loop = DemoLoop(host_a, host_b, ApproverBot(), say, started=started)
        summary = asyncio.run(loop.run())
        for line in summary.lines():
            say(line)
        status = 0 if summary.failure is None else 1
    except KeyboardInterrupt:
        say("Interrupted.")
        status = 130
    finally:
        # A second Ctrl-C while the agents stop would leave one running.
        for sig in (*STOP_SIGNALS, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        say("Stopping the demo agents ...")
        fleet.stop()
        say("Stopped the demo agents.")
        _clean_up(workdir, keep or status == 1)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return status


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _clean_up(workdir: Path, keep: bool) -> None:
    if keep:
        _say(f"Demo files kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _say(message: str) -> None:
    """Print to stderr, which may be a terminal that is gone (EIO, EPIPE)."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr)


def _demo_app(agents: list[AgentEntry], **options: Any):
    """Build the console with the demo loop running in one of its async workers.

    ``options`` go to ``RigdeckApp`` (tests pass transports and a clock).
    """
    from textual.screen import ModalScreen

    from console.app import RigdeckApp

    class DemoApp(RigdeckApp):
        """The console, with the demo's step on its banner.

        The banner shows the user's next steps while the loop waits for
        them, else the latest thing the loop did. A step for the user also
        shows as a notification for ``TOAST_SECONDS``, except over a
        dialog, where it would cover the dialog's buttons.
        """

        loop = None

        def __init__(self, agents: list[AgentEntry], **options: Any) -> None:
            super().__init__(agents, **options)
            self._step = ""
            self._instructions: dict[str, str] = {}

        def show(self, message: str) -> None:
            self._step = " ".join(message.split())
            self._update_banner()

        def instruct(self, key: str, message: str | None) -> None:
            if message is None:
                done = self._instructions.pop(key, None)
                if done is not None:
                    # Without this, the banner would show a step older than this one.
                    self._step = f"✓ {done.partition(': ')[0]}: done."
            else:
                self._instructions[key] = message
                self._toast(f"Your turn: {message}", severity="warning")
            self._update_banner()

        def _update_banner(self) -> None:
            if self._instructions:
                self.banner = "\n".join(
                    f"▶ Your turn: {message}" for message in self._instructions.values()
                )
            else:
                self.banner = f"demo: {self._step}" if self._step else ""

        def push_screen(self, screen, *args: Any, **kwargs: Any):
            # A notification shown before a dialog opens would cover it.
            if isinstance(screen, ModalScreen):
                self.clear_notifications()
            return super().push_screen(screen, *args, **kwargs)

        def _toast(self, message: str, severity: str) -> None:
            if not isinstance(self.screen, ModalScreen):
                self.notify(message, severity=severity, timeout=TOAST_SECONDS)

        async def on_unmount(self) -> None:
            # Stop the replayers while the event loop runs: an asyncio
            # subprocess left to the garbage collector after the loop closed
            # prints "Event loop is closed" on exit. Textual then runs
            # RigdeckApp.on_unmount too.
            for replay in self.loop.replays if self.loop is not None else ():
                await replay.stop()

        def on_ready(self) -> None:
            if self.loop is not None:
                self.run_worker(self.loop.run(), group="demo-loop", exit_on_error=False)

    return DemoApp(agents, **options)
