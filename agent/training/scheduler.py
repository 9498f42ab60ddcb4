"""Fire training jobs on their cron or interval triggers with APScheduler 3.

Three APScheduler 3 defaults drop runs silently, so this module sets each
where it takes effect, in ``job_defaults`` (arguments given to the
scheduler's constructor are ignored without an error):

- ``misfire_grace_time`` defaults to 1 second, so a fire that starts 2
  seconds late is skipped as missed. Here it is None (no limit) unless a
  model sets ``schedule.misfire_grace_seconds``.
- Without ``coalesce``, an agent that was stopped across three fire times
  would run three times at once when it starts; with it, once.
- ``max_instances = 1`` with a job that blocks would mark every later fire
  skipped. The job here only queues a run and returns, and a fire while
  the model's previous run is still active is recorded as ``skipped``.

APScheduler's memory job store keeps jobs in memory only, so each job's
next fire time is also stored in ``jobs.next_fire_at``, written in the
same transaction as each fire. At start, a stored time in the past means the
agent was stopped across one or more fire times. The job is then added with
the last of them, so it fires once. The earlier ones are recorded as
``missed``, in at most ``MAX_MISSED_ROWS`` rows per start.
"""

from __future__ import annotations

import logging
import math
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.base import BaseExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.config import AgentConfig, ScheduleSection
from agent.training.manager import RunManager
from store import Store
from store import jobs as job_rows

logger = logging.getLogger(__name__)

# An hour's stop with a 1 s interval misses 3599 fires. Beyond this many
# missed fires, the last row summarises the rest: their count and time span.
MAX_MISSED_ROWS = 10

JOB_DEFAULTS: dict[str, Any] = {
    "coalesce": True,
    "max_instances": 1,
    "misfire_grace_time": None,
}


def build_trigger(schedule: ScheduleSection) -> CronTrigger | IntervalTrigger | None:
    """Return the APScheduler trigger of a schedule; None when it only fires by hand."""
    if schedule.cron is not None:
        return CronTrigger.from_crontab(
            schedule.cron, timezone=zoneinfo.ZoneInfo(schedule.timezone)
        )
    if schedule.interval_seconds is not None:
        return IntervalTrigger(seconds=schedule.interval_seconds, timezone=UTC)
    return None


def trigger_description(schedule: ScheduleSection) -> dict[str, Any]:
    """Return the parts of a schedule that decide its fire times, for ``jobs``."""
    return {
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "interval_seconds": schedule.interval_seconds,
    }


@dataclass(frozen=True)
class DueFires:
    """The fire times from a stored next fire up to now, without listing them all."""

    count: int
    head: list[datetime]  # the first ``MAX_MISSED_ROWS`` of them, or all
    last: datetime
    before_last: datetime | None


def due_fire_times(trigger, first: datetime, now: datetime) -> DueFires | None:
    """Return the fire times from ``first`` up to ``now``, as APScheduler computes them.

    An interval trigger's times are counted, not listed, because a year at
    1 s intervals is 31 million of them. A cron trigger fires at most once a
    minute, so its times are walked. Walking 30 days of minutely fires took
    about 0.5 s (APScheduler 3.11.3, one core of a 2-CPU x86_64 host).
    """
    if first > now:
        return None
    if isinstance(trigger, IntervalTrigger) and trigger.jitter is None:
        return _due_interval_times(trigger, first, now)
    head: list[datetime] = []
    count, last, before_last = 0, first, None
    current: datetime | None = first
    while current is not None and current <= now:
        count += 1
        if len(head) < MAX_MISSED_ROWS:
            head.append(current)
        if count > 1:
            before_last = last
        last = current
        current = trigger.get_next_fire_time(current, now)
    return DueFires(count, head, last, before_last)


def _due_interval_times(trigger: IntervalTrigger, first: datetime, now: datetime):
    # The same float arithmetic as IntervalTrigger.get_next_fire_time, which
    # adds interval_length to the previous fire's timestamp.
    step = trigger.interval_length
    count = math.floor((now.timestamp() - first.timestamp()) / step) + 1

    def at(index: int) -> datetime:
        return datetime.fromtimestamp(first.timestamp() + index * step, tz=UTC)

    head = [at(index) for index in range(min(count, MAX_MISSED_ROWS))]
    before_last = at(count - 2) if count > 1 else None
    return DueFires(count, head, at(count - 1), before_last)


class _FireExecutor(BaseExecutor):
    """Runs the fire function inline, passing each scheduled fire time.

    APScheduler's own executors do not tell the job when it was due. The
    fire function only writes a few rows, so running it on the scheduler
    thread is cheap. The misfire check mirrors ``apscheduler.executors.base.run_job``.
    """

    def _do_submit_job(self, job, run_times) -> None:
        events = []
        for run_time in run_times:
            late = datetime.now(UTC) - run_time
            if (
                job.misfire_grace_time is not None
                and late.total_seconds() > job.misfire_grace_time
            ):
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_MISSED, job.id, job._jobstore_alias, run_time
                    )
                )
                continue
            try:
                value = job.func(*job.args, scheduled_at=run_time, **job.kwargs)
            except Exception as error:
                logger.exception(
                    "fire of job %s scheduled at %s failed", job.id, run_time
                )
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_ERROR,
                        job.id,
                        job._jobstore_alias,
                        run_time,
                        exception=error,
                    )
                )
            else:
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_EXECUTED,
                        job.id,
                        job._jobstore_alias,
                        run_time,
                        retval=value,
                    )
                )
        self._run_job_success(job.id, events)


class TrainingScheduler:
    """Every model's training job in one APScheduler ``BackgroundScheduler``.

    Args:
        store: the agent's store; ``jobs`` and ``job_fires`` are written.
        config: the agent configuration; each model's ``schedule`` is read.
        runs: queues the runs; ``RunManager.fire`` is called for each fire.
    """

    def __init__(self, store: Store, config: AgentConfig, runs: RunManager) -> None:
        self.store = store
        self.config = config
        self.runs = runs
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults=dict(JOB_DEFAULTS),
            executors={"default": _FireExecutor()},
        )
        self._triggers: dict[str, Any] = {}

    def start(self) -> None:
        now = datetime.now(UTC)
        for model in self.config.models:
            trigger = build_trigger(model.schedule)
            if trigger is not None:
                self._add_job(model.name, model.schedule, trigger, now)
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.scheduler.start()
        logger.info("scheduler started with %s scheduled jobs", len(self._triggers))
        for model in self.config.models:
            if model.schedule.on_start:
                self.runs.fire(
                    model.name, scheduled_at=now.timestamp(), trigger="on_start"
                )

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        logger.info("scheduler stopped")

    def job_info(self, name: str) -> dict[str, Any]:
        """Return the live scheduler's next fire time and the settings in force."""
        job = self.scheduler.get_job(name) if self.scheduler.running else None
        if job is None:
            return {"scheduled": False, "next_fire_at": None}
        return {
            "scheduled": True,
            "next_fire_at": job.next_run_time.timestamp()
            if job.next_run_time
            else None,
            "misfire_grace_seconds": job.misfire_grace_time,
            "coalesce": job.coalesce,
            "max_instances": job.max_instances,
        }

    def _add_job(
        self, name: str, schedule: ScheduleSection, trigger, now: datetime
    ) -> None:
        stored = job_rows.get_job(self.store.db, name)
        stored_next = stored["next_fire_at"] if stored else None
        if stored_next is not None:
            next_run_time = datetime.fromtimestamp(stored_next, UTC)
            due = due_fire_times(trigger, next_run_time, now)
            if due is not None:
                # Added with its last due time, APScheduler fires the job once
                # without walking every missed time itself.
                self._record_missed_while_stopped(name, due)
                next_run_time = due.last
        else:
            next_run_time = trigger.get_next_fire_time(None, now)
        options: dict[str, Any] = {}
        if schedule.misfire_grace_seconds is not None:
            options["misfire_grace_time"] = schedule.misfire_grace_seconds
        self.scheduler.add_job(
            self._fire,
            trigger=trigger,
            args=[name],
            id=name,
            name=name,
            next_run_time=next_run_time,
            replace_existing=True,
            **options,
        )
        self._triggers[name] = trigger
        if stored_next is None:
            with self.store.write() as db:
                job_rows.set_next_fire(db, name, _timestamp(next_run_time))

    def _record_missed_while_stopped(self, name: str, due: DueFires) -> None:
        if due.count < 2:
            return
        missed = due.count - 1
        folded = f"folded into the fire at {due.last.isoformat()}"
        with self.store.write() as db:
            for scheduled in _missed_rows(due, folded):
                job_rows.record_fire(db, name, "missed", **scheduled)
        logger.warning(
            "job %s missed %s fires while the agent was stopped; running it once for "
            "%s",
            name,
            missed,
            due.last.isoformat(),
        )

    def _fire(self, name: str, scheduled_at: datetime | None = None) -> str:
        # APScheduler checks the job's signature when it is added, so
        # scheduled_at needs a default; _FireExecutor always passes it.
        now = datetime.now(UTC)
        scheduled_at = scheduled_at or now
        next_fire = self._triggers[name].get_next_fire_time(scheduled_at, now)
        record = self.runs.fire(
            name,
            scheduled_at=scheduled_at.timestamp(),
            trigger="schedule",
            next_fire_at=_timestamp(next_fire),
            update_next_fire=True,
        )
        return record.outcome

    def _on_missed(self, event: JobExecutionEvent) -> None:
        name = event.job_id
        now = datetime.now(UTC)
        late = (now - event.scheduled_run_time).total_seconds()
        next_fire = self._triggers[name].get_next_fire_time(
            event.scheduled_run_time, now
        )
        try:
            with self.store.write() as db:
                job_rows.set_next_fire(db, name, _timestamp(next_fire))
                job_rows.record_fire(
                    db,
                    name,
                    "missed",
                    scheduled_at=event.scheduled_run_time.timestamp(),
                    detail=f"it was due {late:.0f} s ago, more than "
                    "schedule.misfire_grace_seconds",
                )
        except Exception:
            logger.exception("recording a missed fire of job %s failed", name)


def _timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _missed_rows(due: DueFires, folded: str) -> list[dict[str, Any]]:
    """Return ``record_fire`` arguments for at most ``MAX_MISSED_ROWS`` missed fires.

    Beyond that many, the first ``MAX_MISSED_ROWS - 1`` get a row each and
    one row summarises the rest.
    """
    missed = due.count - 1
    single = missed if missed <= MAX_MISSED_ROWS else MAX_MISSED_ROWS - 1
    rows = [
        {
            "scheduled_at": scheduled.timestamp(),
            "detail": f"the agent was not running; {folded}",
        }
        for scheduled in due.head[:single]
    ]
    if missed > single:
        first = due.head[single]
        rows.append(
            {
                "scheduled_at": first.timestamp(),
                "detail": "the agent was not running; this row summarises "
                f"{missed - single} fire times from {first.isoformat()} to "
                f"{due.before_last.isoformat()}, {folded}",
            }
        )
    return rows
