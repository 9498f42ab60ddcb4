"""Ordered schema migrations, applied by ``PRAGMA user_version``.

Migration N brings a database from user_version N-1 to N. Never edit a
migration that has shipped; append a new one.
"""

MIGRATIONS: list[str] = [
    # 1: a table for every glossary entity.
    """
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'approver', 'admin')),
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL
    );

    CREATE TABLE audit_entries (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        reason TEXT,
        before_json TEXT,
        after_json TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_entries_ts ON audit_entries (ts);
    CREATE INDEX audit_entries_actor ON audit_entries (actor);

    -- The newest entry's id and hash, so that deleting the tail of the
    -- chain is detectable too.
    CREATE TABLE audit_head (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        last_id INTEGER NOT NULL,
        last_hash TEXT NOT NULL
    );

    CREATE TABLE telemetry_samples (
        ts REAL NOT NULL,
        metric TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '',
        value REAL NOT NULL
    );
    CREATE INDEX telemetry_samples_metric_ts ON telemetry_samples (metric, ts);
    CREATE INDEX telemetry_samples_ts ON telemetry_samples (ts);

    CREATE TABLE telemetry_rollups (
        minute REAL NOT NULL,
        metric TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '',
        count INTEGER NOT NULL,
        mean REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        PRIMARY KEY (metric, labels, minute)
    );
    CREATE INDEX telemetry_rollups_minute ON telemetry_rollups (minute);

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE models (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        config_json TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        trigger_json TEXT NOT NULL,
        next_fire_at REAL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE job_fires (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL REFERENCES jobs (name),
        scheduled_at REAL,
        recorded_at REAL NOT NULL,
        outcome TEXT NOT NULL
            CHECK (outcome IN ('started', 'missed', 'skipped', 'refused')),
        run_id INTEGER REFERENCES runs (id),
        detail TEXT
    );
    CREATE INDEX job_fires_job ON job_fires (job, recorded_at);

    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        job TEXT REFERENCES jobs (name),
        model TEXT NOT NULL REFERENCES models (name),
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded',
            'failed', 'cancelled', 'timed_out', 'interrupted')),
        trigger TEXT NOT NULL,
        requested_by TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        pid INTEGER,
        pgid INTEGER,
        gpus TEXT,
        budget_seconds REAL,
        log_path TEXT,
        data_sha256 TEXT,
        progress_json TEXT,
        metrics_json TEXT,
        error TEXT
    );
    CREATE INDEX runs_model_state ON runs (model, state);

    CREATE TABLE versions (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        number INTEGER NOT NULL,
        run_id INTEGER REFERENCES runs (id),
        created_at REAL NOT NULL,
        artifact_path TEXT NOT NULL,
        artifact_sha256 TEXT NOT NULL,
        metrics_json TEXT NOT NULL DEFAULT '{}',
        lineage_json TEXT NOT NULL DEFAULT '{}',
        reference_json TEXT NOT NULL DEFAULT '{}',
        gate_state TEXT NOT NULL DEFAULT 'pending'
            CHECK (gate_state IN ('pending', 'passed', 'failed', 'overridden')),
        load_error TEXT,
        UNIQUE (model, number)
    );

    CREATE TABLE gate_results (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES versions (id),
        gate TEXT NOT NULL,
        passed INTEGER NOT NULL,
        reason TEXT NOT NULL,
        details_json TEXT NOT NULL DEFAULT '{}',
        evaluated_at REAL NOT NULL
    );

    CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        version INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected',
            'canary', 'promoted', 'aborted', 'rolled_back')),
        requested_by TEXT NOT NULL,
        reason TEXT,
        approvals_required INTEGER NOT NULL DEFAULT 1,
        canary_weight REAL,
        canary_started_at REAL,
        verdict_json TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX releases_model_state ON releases (model, state);

    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases (id),
        actor TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        reason TEXT,
        ts REAL NOT NULL,
        UNIQUE (release_id, actor)
    );

    CREATE TABLE deployments (
        model TEXT PRIMARY KEY REFERENCES models (name),
        stable_version INTEGER,
        canary_version INTEGER,
        canary_weight REAL NOT NULL DEFAULT 0,
        release_id INTEGER REFERENCES releases (id),
        updated_at REAL NOT NULL
    );

    CREATE TABLE monitors (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        signal TEXT NOT NULL,
        detector TEXT NOT NULL,
        params_json TEXT NOT NULL DEFAULT '{}',
        state_json TEXT,
        updated_at REAL NOT NULL,
        UNIQUE (model, signal, detector)
    );

    CREATE TABLE drift_events (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        version INTEGER,
        signal TEXT NOT NULL,
        detector TEXT NOT NULL,
        sample_index INTEGER NOT NULL,
        ts REAL NOT NULL,
        stats_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX drift_events_model_ts ON drift_events (model, ts);

    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        source TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at REAL NOT NULL,
        acknowledged_by TEXT,
        acknowledged_at REAL
    );
    CREATE INDEX alerts_open ON alerts (acknowledged_at, created_at);

    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        version INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        ts REAL NOT NULL,
        features_json TEXT NOT NULL,
        outputs_json TEXT NOT NULL,
        latency_seconds REAL NOT NULL,
        status INTEGER NOT NULL
    );
    CREATE INDEX predictions_model_ts ON predictions (model, ts);
    CREATE INDEX predictions_request ON predictions (request_id);

    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        request_id TEXT NOT NULL,
        label TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX feedback_request ON feedback (request_id);

    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER REFERENCES alerts (id),
        notifier TEXT NOT NULL,
        outcome TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        detail TEXT,
        ts REAL NOT NULL
    );
    """,
    # 2: what training needs beyond migration 1: a cancel request on a run
    # (the API records it, the supervisor ends the process group), the run's
    # spec and exit code, and an admin's gate override on a version.
    """
    ALTER TABLE runs ADD COLUMN spec_json TEXT;
    ALTER TABLE runs ADD COLUMN exit_code INTEGER;
    ALTER TABLE runs ADD COLUMN cancel_requested_at REAL;
    ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT;
    CREATE INDEX runs_state ON runs (state);
    CREATE INDEX runs_job ON runs (job, id);

    ALTER TABLE versions ADD COLUMN overridden_by TEXT;
    ALTER TABLE versions ADD COLUMN override_reason TEXT;
    ALTER TABLE versions ADD COLUMN overridden_at REAL;
    CREATE INDEX gate_results_version ON gate_results (version_id);
    """,
    # 3: what serving and releases need beyond migration 1: the history of
    # every deployment change (a rollback walks it back through
    # rollback_to_id), who made a release's last state change and why, the
    # row of a batch a prediction belongs to and whether its outputs were
    # finite, and at most one feedback label per prediction.
    """
    CREATE TABLE deployment_history (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        stable_version INTEGER,
        canary_version INTEGER,
        canary_weight REAL NOT NULL DEFAULT 0,
        release_id INTEGER REFERENCES releases (id),
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT,
        rollback_to_id INTEGER REFERENCES deployment_history (id),
        ts REAL NOT NULL
    );
    CREATE INDEX deployment_history_model ON deployment_history (model, id);

    ALTER TABLE releases ADD COLUMN state_changed_by TEXT;
    ALTER TABLE releases ADD COLUMN state_reason TEXT;

    ALTER TABLE predictions ADD COLUMN row_index INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE predictions ADD COLUMN nonfinite INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX feedback_model_request ON feedback (model, request_id);
    """,
    # 4: drift monitoring. A monitor watches one signal of the version that
    # serves one role (stable or canary) of a model, so the unused monitors
    # table of migration 1, unique per (model, signal, detector), is rebuilt
    # unique per (model, role, signal) with the version it watches. A drift
    # event records the role it was found on and the alert it raised.
    """
    CREATE TABLE monitors_new (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL REFERENCES models (name),
        role TEXT NOT NULL DEFAULT 'stable' CHECK (role IN ('stable', 'canary')),
        version INTEGER,
        signal TEXT NOT NULL,
        detector TEXT NOT NULL,
        params_json TEXT NOT NULL DEFAULT '{}',
        state_json TEXT,
        updated_at REAL NOT NULL,
        UNIQUE (model, role, signal)
    );
    INSERT INTO monitors_new (id, model, signal, detector, params_json, state_json,
        updated_at)
        SELECT id, model, signal, detector, params_json, state_json, updated_at
        FROM monitors;
    DROP TABLE monitors;
    ALTER TABLE monitors_new RENAME TO monitors;

    ALTER TABLE drift_events ADD COLUMN role TEXT NOT NULL DEFAULT 'stable';
    ALTER TABLE drift_events ADD COLUMN alert_id INTEGER REFERENCES alerts (id);
    CREATE INDEX drift_events_model_id ON drift_events (model, id);
    CREATE INDEX drift_events_alert ON drift_events (alert_id);
    """,
]
