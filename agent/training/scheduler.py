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
agent was stopped across one or more fire times: the job is added with
that past time, APScheduler folds the missed times into one fire, and the
earlier ones are recorded as ``missed``.
"""

from __future__ import annotations

import logging
import zoneinfo
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


def fire_times_between(trigger, first: datetime, now: datetime) -> list[datetime]:
    """Fire times from ``first`` up to ``now``, as APScheduler computes them."""
    times: list[datetime] = []
    current: datetime | None = first
    while current is not None and current <= now:
        times.append(current)
        current = trigger.get_next_fire_time(current, now)
    return times


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
            if next_run_time <= now:
                self._record_missed_while_stopped(name, trigger, next_run_time, now)
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

    def _record_missed_while_stopped(
        self, name: str, trigger, first: datetime, now: datetime
    ) -> None:
        due = fire_times_between(trigger, first, now)
        if len(due) < 2:
            return
        last = due[-1]
        with self.store.write() as db:
            for scheduled in due[:-1]:
                job_rows.record_fire(
                    db,
                    name,
                    "missed",
                    scheduled_at=scheduled.timestamp(),
                    detail="the agent was not running; folded into the fire at "
                    f"{last.isoformat()}",
                )
        logger.warning(
            "job %s missed %s fires while the agent was stopped; running it once for "
            "%s",
            name,
            len(due) - 1,
            last.isoformat(),
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
