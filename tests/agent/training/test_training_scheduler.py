"""Scheduled fires (APScheduler 3): job defaults, catch-up, missed and skipped fires."""

from __future__ import annotations

import logging
import time
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from harness import wait_for
from training_helpers import model_toml

from agent.training.manager import RunManager
from agent.training.scheduler import (
    JOB_DEFAULTS,
    MAX_MISSED_ROWS,
    TrainingScheduler,
    build_trigger,
)
from store import jobs as job_rows
from store import runs as run_rows

HOUR = 3600.0


@pytest.fixture
def scheduled(harness):
    """Build a harness whose run manager is not started, so queued runs stay queued."""
    schedulers: list[TrainingScheduler] = []

    def factory(body: str, *, stored_next_fire: dict[str, float] | None = None):
        built = harness(body, start=False)
        with built.store.write() as db:
            for job, next_fire in (stored_next_fire or {}).items():
                job_rows.set_next_fire(db, job, next_fire)
        scheduler = TrainingScheduler(built.store, built.config, built.runs)
        schedulers.append(scheduler)
        return built, scheduler

    yield factory
    for scheduler in schedulers:
        scheduler.stop()


def _counts(built, job: str) -> dict[str, int]:
    return job_rows.fire_counts(built.store.db, job)


def test_job_defaults_read_back_from_live_scheduler(scheduled):
    body = model_toml(
        "hourly", "fixed-metrics", schedule="interval_seconds = 3600"
    ) + model_toml(
        "graceful",
        "fixed-metrics",
        schedule='cron = "0 3 * * *"\nmisfire_grace_seconds = 30',
    )
    built, scheduler = scheduled(body)
    scheduler.start()

    assert scheduler.scheduler.running
    assert scheduler.scheduler._job_defaults == {
        "misfire_grace_time": None,
        "coalesce": True,
        "max_instances": 1,
    }
    assert scheduler.scheduler._job_defaults == JOB_DEFAULTS
    hourly = scheduler.scheduler.get_job("hourly")
    assert hourly.misfire_grace_time is None
    assert hourly.coalesce is True
    assert hourly.max_instances == 1
    graceful = scheduler.scheduler.get_job("graceful")
    assert graceful.misfire_grace_time == 30
    assert graceful.coalesce is True
    info = scheduler.job_info("graceful")
    assert info["misfire_grace_seconds"] == 30
    assert info["next_fire_at"] == graceful.next_run_time.timestamp()
    stored = job_rows.get_job(built.store.db, "graceful")["next_fire_at"]
    assert stored == graceful.next_run_time.timestamp()


def _top_of_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("kind", ["interval", "cron"])
def test_stopped_across_three_fires_runs_once(scheduled, kind: str):
    now = datetime.now(UTC)
    if kind == "interval":
        schedule = "interval_seconds = 3600"
        first_missed = now - timedelta(hours=2, minutes=30)
    else:
        schedule = 'cron = "0 * * * *"'
        first_missed = _top_of_hour(now) - timedelta(hours=2)
    built, scheduler = scheduled(
        model_toml("hourly", "fixed-metrics", schedule=schedule),
        stored_next_fire={"hourly": first_missed.timestamp()},
    )
    scheduler.start()

    wait_for(
        lambda: _counts(built, "hourly")["started"] == 1,
        timeout=10,
        what="the catch-up fire",
    )
    job = scheduler.scheduler.get_job("hourly")
    expected_next = first_missed + timedelta(hours=3)
    assert job.next_run_time == expected_next
    assert job.next_run_time > datetime.now(UTC)
    assert _counts(built, "hourly") == {
        "started": 1,
        "missed": 2,
        "skipped": 0,
        "refused": 0,
    }
    fires = job_rows.list_fires(built.store.db, "hourly")
    started = [fire for fire in fires if fire["outcome"] == "started"]
    missed = sorted(
        fire["scheduled_at"] for fire in fires if fire["outcome"] == "missed"
    )
    assert started[0]["scheduled_at"] == (first_missed + timedelta(hours=2)).timestamp()
    assert missed == [
        first_missed.timestamp(),
        (first_missed + timedelta(hours=1)).timestamp(),
    ]
    runs = run_rows.list_runs(built.store.db, model="hourly")
    assert [(run["state"], run["trigger"]) for run in runs] == [("queued", "schedule")]
    assert started[0]["run_id"] == runs[0]["id"]
    assert (
        job_rows.get_job(built.store.db, "hourly")["next_fire_at"]
        == expected_next.timestamp()
    )


def test_late_fire_beyond_grace_is_recorded_missed(scheduled):
    now = datetime.now(UTC)
    first_missed = now - timedelta(hours=2, minutes=30)
    body = model_toml(
        "strict",
        "fixed-metrics",
        schedule="interval_seconds = 3600\nmisfire_grace_seconds = 60",
    )
    built, scheduler = scheduled(
        body, stored_next_fire={"strict": first_missed.timestamp()}
    )
    scheduler.start()

    wait_for(
        lambda: _counts(built, "strict")["missed"] == 3,
        timeout=10,
        what="three missed fires",
    )
    assert _counts(built, "strict") == {
        "started": 0,
        "missed": 3,
        "skipped": 0,
        "refused": 0,
    }
    assert run_rows.list_runs(built.store.db, model="strict") == []
    latest = job_rows.list_fires(built.store.db, "strict", limit=1)[0]
    assert latest["scheduled_at"] == (first_missed + timedelta(hours=2)).timestamp()
    assert "more than schedule.misfire_grace_seconds" in latest["detail"]
    expected_next = first_missed + timedelta(hours=3)
    assert (
        job_rows.get_job(built.store.db, "strict")["next_fire_at"]
        == expected_next.timestamp()
    )


def test_fire_during_active_run_is_skipped(scheduled):
    now = datetime.now(UTC)
    built, scheduler = scheduled(
        model_toml("busy", "fixed-metrics", schedule="interval_seconds = 3600"),
        stored_next_fire={"busy": (now - timedelta(minutes=5)).timestamp()},
    )
    active = built.runs.trigger("busy", actor="alice")
    scheduler.start()

    wait_for(
        lambda: _counts(built, "busy")["skipped"] == 1,
        timeout=10,
        what="the skipped fire",
    )
    skipped = job_rows.list_fires(built.store.db, "busy", outcome="skipped")[0]
    assert skipped["detail"] == f"run {active['id']} of model busy was still queued"
    assert skipped["run_id"] is None
    assert len(run_rows.list_runs(built.store.db, model="busy")) == 1


def test_on_start_fires_once_at_start(scheduled):
    built, scheduler = scheduled(
        model_toml("eager", "fixed-metrics", schedule="on_start = true")
    )
    before = time.time()
    scheduler.start()

    fires = job_rows.list_fires(built.store.db, "eager")
    assert [(fire["outcome"], fire["detail"]) for fire in fires] == [
        ("started", "on_start fire")
    ]
    assert fires[0]["scheduled_at"] >= before - 1
    runs = run_rows.list_runs(built.store.db, model="eager")
    assert [run["trigger"] for run in runs] == ["on_start"]
    assert scheduler.job_info("eager") == {"scheduled": False, "next_fire_at": None}


def test_changed_trigger_discards_stored_next_fire(scheduled, harness):
    past = (datetime.now(UTC) - timedelta(hours=5)).timestamp()
    built, _ = scheduled(
        model_toml("m", "fixed-metrics", schedule="interval_seconds = 3600"),
        stored_next_fire={"m": past},
    )
    with built.store.write() as db:
        job_rows.upsert_job(
            db,
            "m",
            "m",
            {"cron": "0 3 * * *", "timezone": "UTC", "interval_seconds": None},
        )
    assert job_rows.get_job(built.store.db, "m")["next_fire_at"] is None


def test_cron_uses_utc_unless_timezone_given():
    from agent.config import ScheduleSection

    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    utc = build_trigger(ScheduleSection(cron="0 3 * * *")).get_next_fire_time(None, now)
    berlin = build_trigger(
        ScheduleSection(cron="0 3 * * *", timezone="Europe/Berlin")
    ).get_next_fire_time(None, now)
    assert utc == datetime(2026, 7, 2, 3, 0, tzinfo=UTC)
    assert berlin.astimezone(zoneinfo.ZoneInfo("Europe/Berlin")).hour == 3
    assert berlin.astimezone(UTC) == datetime(2026, 7, 2, 1, 0, tzinfo=UTC)


def test_long_stop_records_bounded_missed_rows(scheduled):
    first_missed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    built, scheduler = scheduled(
        model_toml("often", "fixed-metrics", schedule="interval_seconds = 1"),
        stored_next_fire={"often": first_missed.timestamp()},
    )
    scheduler.start()

    wait_for(
        lambda: _counts(built, "often")["started"] == 1,
        timeout=10,
        what="the catch-up fire",
    )
    fires = job_rows.list_fires(built.store.db, "often", limit=1000)
    catch_up = next(fire for fire in fires if fire["outcome"] == "started")
    last = datetime.fromtimestamp(catch_up["scheduled_at"], UTC)
    missed_count = round((last - first_missed).total_seconds())
    assert missed_count >= 3600
    missed = sorted(
        (fire for fire in fires if fire["outcome"] == "missed"),
        key=lambda fire: fire["scheduled_at"],
    )
    assert len(missed) == MAX_MISSED_ROWS
    assert [fire["scheduled_at"] for fire in missed] == [
        (first_missed + timedelta(seconds=index)).timestamp()
        for index in range(MAX_MISSED_ROWS)
    ]
    folded = f"folded into the fire at {last.isoformat()}"
    assert missed[0]["detail"] == f"the agent was not running; {folded}"
    summary_first = first_missed + timedelta(seconds=MAX_MISSED_ROWS - 1)
    summary_last = last - timedelta(seconds=1)
    assert missed[-1]["detail"] == (
        f"the agent was not running; this row summarises "
        f"{missed_count - MAX_MISSED_ROWS + 1} fire times from "
        f"{summary_first.isoformat()} to {summary_last.isoformat()}, {folded}"
    )


def test_year_long_stop_starts_quickly(scheduled):
    first_missed = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365)
    built, scheduler = scheduled(
        model_toml("often", "fixed-metrics", schedule="interval_seconds = 1"),
        stored_next_fire={"often": first_missed.timestamp()},
    )
    started = time.monotonic()
    scheduler.start()

    assert time.monotonic() - started < 5
    assert _counts(built, "often")["missed"] == MAX_MISSED_ROWS


def test_skipped_fire_warning_is_rate_limited(harness, caplog):
    built = harness(model_toml("busy", "fixed-metrics"), start=False)
    now = [1000.0]
    runs = RunManager(built.store, built.config, clock=lambda: now[0])
    active = runs.trigger("busy", actor="alice")

    with caplog.at_level(logging.WARNING, logger="agent.training.manager"):
        for _ in range(5):
            runs.fire("busy", scheduled_at=time.time())
        now[0] += 59.9
        runs.fire("busy", scheduled_at=time.time())
        now[0] += 0.1
        runs.fire("busy", scheduled_at=time.time())

    detail = f"run {active['id']} of model busy was still queued"
    assert [record.getMessage() for record in caplog.records] == [
        f"schedule fire of job busy skipped: {detail}",
        f"schedule fire of job busy skipped: {detail} (5 more skipped fires of this "
        "job were not logged in the last 60 s)",
    ]
    assert _counts(built, "busy")["skipped"] == 7
