"""Jobs with their next fire, and runs with state, progress, duration and metrics."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable

from console import resources
from console.format import (
    NO_VALUE,
    bar,
    format_age,
    format_duration,
    format_number,
    format_until,
    truncate,
)
from console.screens.base import ConsoleScreen
from console.screens.reason_dialog import ReasonDialog
from console.widgets import ResourceTable, Row

JOB_COLUMNS = ("AGENT", "JOB", "TRIGGER", "NEXT FIRE", "LAST FIRE", "ACTIVE")
RUN_COLUMNS = (
    "AGENT",
    "RUN",
    "MODEL",
    "TRIGGER",
    "STATE",
    "PROGRESS",
    "TIME",
    "METRICS",
)
RUN_STATES = {
    "queued": ("…", "dim"),
    "running": ("▶", "cyan"),
    "succeeded": ("✓", "green"),
    "failed": ("✕", "red"),
    "cancelled": ("⊘", "yellow"),
    "timed_out": ("⌛", "red"),
    "interrupted": ("!", "red"),
}
ACTIVE_STATES = ("queued", "running")
METRICS_WIDTH = 24


def row_key(agent: str, item_id: object) -> str:
    return f"{agent}\t{item_id}"


def split_key(key: str) -> tuple[str, str]:
    agent, _, item_id = key.partition("\t")
    return agent, item_id


def trigger_text(trigger: dict[str, Any] | None) -> str:
    """Return a job's trigger in words: ``cron 0 3 * * *``, ``every 600s``."""
    if not trigger:
        return "by hand"
    if trigger.get("cron"):
        return f"cron {trigger['cron']}"
    if trigger.get("interval_seconds"):
        return f"every {format_duration(trigger['interval_seconds'])}"
    kinds = [key for key, value in trigger.items() if value and key != "timezone"]
    return ", ".join(kinds) or "by hand"


def state_text(state: str | None) -> Text:
    symbol, style = RUN_STATES.get(state or "", ("?", ""))
    return Text(f"{symbol} {state or 'unknown'}", style=style)


def progress_cell(run: dict[str, Any]) -> str:
    """Return a bar and ``epoch/max`` for a running run, else blank."""
    if run.get("state") not in ACTIVE_STATES:
        return ""
    progress = run.get("progress") or {}
    fraction = progress.get("fraction")
    epoch = progress.get("epoch")
    total = progress.get("epochs") or _max_epochs(run)
    if fraction is None and epoch is not None and total:
        fraction = epoch / total
    label = f" {epoch}/{total}" if epoch is not None and total else ""
    if fraction is None:
        return "·" * 8 + (f" {epoch}" if epoch is not None else "")
    return bar(fraction, 8) + label


def _max_epochs(run: dict[str, Any]) -> int | None:
    spec = run.get("spec") or {}
    params = (spec.get("recipe") or {}).get("params") or {}
    value = params.get("max_epochs")
    return value if isinstance(value, int) else None


def duration_of(run: dict[str, Any], now: float) -> str:
    started = run.get("started_at")
    if started is None:
        return (
            f"queued {format_age(now - run['created_at'])}"
            if run.get("created_at")
            else NO_VALUE
        )
    return format_duration((run.get("finished_at") or now) - started)


def metrics_text(metrics: dict[str, Any] | None, width: int = METRICS_WIDTH) -> str:
    """Return scalar metrics as ``name value`` pairs, cut to ``width``."""
    if not metrics:
        return ""
    pairs = [
        f"{name} {format_number(value)}"
        for name, value in sorted(metrics.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    return truncate(" ".join(pairs), width)


class RunsScreen(ConsoleScreen):
    """Jobs (top) and recent runs (bottom) of every agent.

    ``t`` triggers the selected job (or the job of the selected run), ``c``
    cancels the selected run, ``l`` and Enter follow its log.
    """

    VIEW = "runs"
    BINDINGS = [
        Binding("t", "trigger", "Trigger", id="trigger"),
        Binding("c", "cancel", "Cancel run", id="cancel"),
        Binding("l", "log", "Log", id="log"),
    ]

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(JOB_COLUMNS, id="jobs")
        yield ResourceTable(RUN_COLUMNS, id="runs")

    def initial_focus(self) -> Widget | None:
        return self.query_one("#runs", ResourceTable)

    def poll_plan(self) -> dict[str, set[str]]:
        return {name: {resources.JOBS, resources.RUNS} for name in self.rigdeck.clients}

    def refresh_view(self, agents: set[str] | None) -> None:
        now = self.rigdeck.clock()
        jobs, runs = [], []
        for client, data in self.clients():
            for job in data.jobs or ():
                jobs.append(self._job_row(client.name, job, now))
            runs.extend((client.name, run) for run in data.runs or ())
        # Queued and running runs first, then the newest.
        runs.sort(
            key=lambda pair: (pair[1].get("state") not in ACTIVE_STATES, -pair[1]["id"])
        )
        self.set_rows_of("jobs", jobs)
        self.set_rows_of(
            "runs", [self._run_row(agent, run, now) for agent, run in runs]
        )
        super().refresh_view(agents)

    def _job_row(self, agent: str, job: dict[str, Any], now: float) -> Row:
        last = job.get("last_fire") or {}
        last_text = NO_VALUE
        if last:
            last_text = f"{last.get('outcome')} {format_age(now - last['recorded_at'])}"
        active = job.get("active_run")
        return Row(
            row_key(agent, job["name"]),
            (
                agent,
                job["name"],
                truncate(trigger_text(job.get("trigger")), 18),
                format_until(job.get("next_fire_at"), now),
                last_text,
                f"run {active}" if active else "",
            ),
        )

    def _run_row(self, agent: str, run: dict[str, Any], now: float) -> Row:
        return Row(
            row_key(agent, run["id"]),
            (
                agent,
                str(run["id"]),
                run.get("model") or NO_VALUE,
                # manual, schedule, on_start or drift.
                truncate(run.get("trigger") or NO_VALUE, 8),
                state_text(run.get("state")),
                progress_cell(run),
                duration_of(run, now),
                metrics_text(run.get("metrics")),
            ),
        )

    # Selection.

    def _selected_run(self) -> tuple[str, dict[str, Any]] | None:
        if self.main_table is None or self.main_table.id != "runs":
            return None
        key = self.selected("runs")
        if key is None:
            return None
        agent, run_id = split_key(key)
        for run in self.rigdeck.data[agent].runs or ():
            if str(run["id"]) == run_id:
                return agent, run
        return None

    def _selected_job(self) -> tuple[str, str] | None:
        table = self.main_table
        if table is not None and table.id == "jobs":
            key = self.selected("jobs")
            return split_key(key) if key else None
        selected = self._selected_run()
        if selected and selected[1].get("job"):
            return selected[0], selected[1]["job"]
        return None

    def selected_agent(self) -> str | None:
        key = self.main_table.selected_key if self.main_table else None
        return split_key(key)[0] if key else None

    def action_target(self, action: str) -> tuple[str | None, str | None]:
        if action == "trigger":
            job = self._selected_job()
            return (job[0], None) if job else (None, "select a job or run")
        if action == "cancel":
            selected = self._selected_run()
            if selected is None:
                return None, "select a run"
            agent, run = selected
            if run.get("state") not in ACTIVE_STATES:
                return (
                    agent,
                    f"run {run['id']} is {run.get('state')}, not queued or running",
                )
            return agent, None
        return super().action_target(action)

    # Actions.

    def action_trigger(self) -> None:
        if self.refuse_if_blocked("trigger"):
            return
        agent, job = self._selected_job()  # type: ignore[misc]
        dialog = ReasonDialog(
            f"Trigger a run of job {job} on {agent}",
            "The agent queues a run now, outside the job's schedule.",
            confirm_label="Trigger",
        )

        def send(reason: str | None) -> None:
            if reason is not None:
                self.rigdeck.act(
                    agent,
                    "trigger",
                    f"job {job}",
                    f"/api/v1/jobs/{job}/trigger",
                    {"reason": reason or None},
                )

        self.app.push_screen(dialog, send)

    def action_cancel(self) -> None:
        if self.refuse_if_blocked("cancel"):
            return
        agent, run = self._selected_run()  # type: ignore[misc]
        dialog = ReasonDialog(
            f"Cancel run {run['id']} ({run.get('model')}) on {agent}",
            "The agent sends SIGTERM to the run's process group, then SIGKILL.",
            confirm_label="Cancel run",
        )

        def send(reason: str | None) -> None:
            if reason is not None:
                self.rigdeck.act(
                    agent,
                    "cancel",
                    f"run {run['id']}",
                    f"/api/v1/runs/{run['id']}/cancel",
                    {"reason": reason or None},
                )

        self.app.push_screen(dialog, send)

    def action_log(self) -> None:
        selected = self._selected_run()
        if selected is None:
            self.notify("Select a run to see its log.", severity="warning")
            return
        from console.screens.run_log import RunLogScreen

        agent, run = selected
        self.app.push_screen(RunLogScreen(agent, run["id"], run.get("model") or ""))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "runs":
            self.action_log()
        elif event.data_table.id == "jobs" and event.row_key.value:
            _agent, job = split_key(event.row_key.value)
            runs = self.query_one("#runs", ResourceTable)
            runs.filter_text = job
            self.set_focus(runs)
            self.update_hint()
