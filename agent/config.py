"""The agent's TOML configuration, validated when it loads.

Every error names the file, the key and the bad value. Relative paths
are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.errors import ConfigError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _check_listener(section: Any) -> None:
    """Require TLS, or an explicit insecure flag, for a non-loopback listener."""
    if (section.tls_cert is None) != (section.tls_key is None):
        raise ValueError("tls_cert and tls_key must be set together")
    if (
        section.host not in LOOPBACK_HOSTS
        and section.tls_cert is None
        and not section.insecure
    ):
        raise ValueError(
            f"host {section.host!r} is not loopback: set tls_cert and tls_key, "
            "or insecure = true to accept plain HTTP"
        )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSection(_Section):
    name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Host name shown in the console. Default: the machine's hostname.",
    )
    region: str = Field(
        "default",
        min_length=1,
        description="Data-residency region of this host, for the residency gate.",
    )
    data_dir: Path = Field(
        Path("data"),
        description="Store, artifacts and run logs. Relative to this file.",
    )
    log_level: str = Field(
        "info", pattern=r"^(debug|info|warning|error)$", description="Log level."
    )


class ApiSection(_Section):
    host: str = Field("127.0.0.1", description="Address the control API listens on.")
    port: int = Field(
        7070, ge=0, le=65535, description="Control API port; 0 picks a free one."
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate; needed off loopback."
    )
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    insecure: bool = Field(
        False,
        description="Allow plain HTTP on a non-loopback address (logs a warning).",
    )
    metrics_open: bool = Field(
        False, description="Serve /metrics without a token, for a Prometheus scraper."
    )
    max_body_bytes: int = Field(
        1_048_576, gt=0, description="Largest request body accepted, in bytes."
    )

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> ApiSection:
        _check_listener(self)
        return self


class TelemetrySection(_Section):
    interval_seconds: float = Field(
        2.0, gt=0, le=3600, description="Seconds between two telemetry samples."
    )
    flush_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds between two batched writes of samples.",
    )
    raw_retention_hours: float = Field(
        24.0, gt=0, description="Hours raw samples are kept before only rollups remain."
    )
    rollup_retention_days: float = Field(
        30.0, gt=0, description="Days one-minute rollups are kept."
    )
    nvml: bool = Field(True, description="Sample NVIDIA GPUs through NVML.")
    nvml_module: str = Field(
        "pynvml",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="Python module that provides the NVML API (tests use a fake).",
    )


class StoreSection(_Section):
    busy_timeout_ms: int = Field(
        5000, ge=100, le=600_000, description="Milliseconds a write waits for a lock."
    )


# Model names become job names, URL segments and directory names, so they
# are slugs without dots or slashes.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir") or Path.cwd())


def _load_plugin(kind: str, name: str) -> type:
    # Imported here so that importing agent.config stays cheap.
    from plugins import PluginError, load

    try:
        return load(kind, name)
    except PluginError as error:
        raise ValueError(str(error)) from None


def _plugin_call(function, *args, **kwargs) -> Any:
    from plugins import PluginError

    try:
        return function(*args, **kwargs)
    except PluginError as error:
        raise ValueError(str(error)) from None
    except Exception as error:
        # Third-party plugin code may raise anything; name it instead of
        # ending the load with a traceback.
        name = getattr(function, "__qualname__", repr(function))
        raise ValueError(f"{name} raised {type(error).__name__}: {error}") from None


class DatasetSection(_Section):
    plugin: str = Field(
        ...,
        description="Dataset plugin: river, csv, sqlite, or a third-party one.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The plugin's options (see docs/plugins.md)."
    )
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="Feature columns, in order. Default: every column but the target "
        "and the sensitive attribute.",
    )
    target: str | None = Field(
        None, description="Target column. Default: the plugin's."
    )
    sensitive_attribute: str | None = Field(
        None,
        description="Categorical column the fairness gap (demographic parity "
        "difference) is computed over. Default: none.",
    )
    regions: list[str] = Field(
        default_factory=list,
        description="Regions the training data may go to; empty means unrestricted. "
        "The residency gate checks agent.region against it.",
    )
    include_feedback: bool = Field(
        False,
        description="Append the labelled feedback stored by the serving side "
        "(feedback joined to predictions by request_id) to the rows.",
    )

    @model_validator(mode="after")
    def _check_plugin(self, info: ValidationInfo) -> DatasetSection:
        plugin = _load_plugin("dataset", self.plugin)
        configured = dict(self.options)
        self.options = _plugin_call(
            plugin.validate_options, self.options, base_dir=_base_dir(info)
        )
        self._check_input_files(plugin, configured)
        if self.target is None:
            self.target = _plugin_call(plugin(self.options).default_target)
        if self.target is None:
            raise ValueError(
                f"the {self.plugin} dataset has no default target; set target"
            )
        if self.features is not None:
            if self.target in self.features:
                raise ValueError(
                    f"the target {self.target!r} is also listed in features"
                )
            if len(set(self.features)) != len(self.features):
                raise ValueError(f"features lists a column twice: {self.features}")
        return self

    def _check_input_files(self, plugin: type, configured: dict[str, Any]) -> None:
        """Raise for a missing input file, located at ``options.KEY`` of this section.

        A dataset plugin that reads files lists them, by option key, from an
        ``input_files(options)`` classmethod (csv and sqlite do). pydantic
        (2.14) prefixes the location of a ValidationError raised in a validator
        with the section's own, so the error names
        ``models.N.dataset.options.path``.
        """
        from pydantic_core import InitErrorDetails, PydanticCustomError

        input_files = getattr(plugin, "input_files", None)
        if input_files is None:
            return
        for key, path in _plugin_call(input_files, self.options).items():
            if path.is_file():
                continue
            if path.is_dir():
                problem = f"{path} is a directory, not a file"
            else:
                problem = (
                    f"the file {path} does not exist; create it, or correct the "
                    "path, which is resolved against the directory of agent.toml"
                )
            error = PydanticCustomError(
                "missing_file", "{problem}", {"problem": problem}
            )
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=error, loc=("options", key), input=configured.get(key)
                    )
                ],
            )


class RecipeSection(_Section):
    plugin: str = Field(..., description="Recipe plugin, e.g. tabular-mlp.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The recipe's parameters (see docs/plugins.md).",
    )

    @model_validator(mode="after")
    def _check_plugin(self) -> RecipeSection:
        plugin = _load_plugin("recipe", self.plugin)
        self.params = _plugin_call(plugin.validate_params, self.params)
        return self


class ScheduleSection(_Section):
    cron: str | None = Field(
        None, description="Five-field crontab expression, e.g. '0 3 * * *' for 03:00."
    )
    timezone: str = Field(
        "UTC", description="IANA time zone the cron expression is read in."
    )
    interval_seconds: float | None = Field(
        None,
        ge=1,
        le=366 * 86400,
        allow_inf_nan=False,
        description="Seconds between fires, from 1 to 31622400 (366 days); an "
        "alternative to cron. Each fire writes a row to job_fires, and a fire "
        "while the previous run is active is recorded as skipped, so a shorter "
        "interval would flood the store and the log. The upper bound rejects "
        "values such as 1e300 that overflow the timedelta of APScheduler's "
        "IntervalTrigger.",
    )
    on_start: bool = Field(
        False, description="Also fire once each time the agent starts."
    )
    misfire_grace_seconds: int | None = Field(
        None,
        ge=1,
        description="Whole seconds a fire may start late before it counts as missed. "
        "Default: no limit, so a late fire still runs, once however many were "
        "missed.",
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'UTC' or "
                "'Europe/Berlin'"
            ) from None
        return value

    @model_validator(mode="after")
    def _check_trigger(self) -> ScheduleSection:
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("set cron or interval_seconds, not both")
        if self.cron is not None:
            import zoneinfo

            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(
                    self.cron, timezone=zoneinfo.ZoneInfo(self.timezone)
                )
            except ValueError as error:
                raise ValueError(
                    f"invalid cron expression {self.cron!r}: {error}; use five fields "
                    "(minute hour day month day-of-week)"
                ) from None
        return self


class ResourcesSection(_Section):
    gpus: int = Field(
        0,
        ge=0,
        le=64,
        description="GPUs a run needs; 0 trains on the CPU. More than 1 runs "
        "the recipe under torchrun.",
    )
    budget_seconds: float = Field(
        3600.0,
        gt=0,
        le=30 * 86400,
        allow_inf_nan=False,
        description="Wall-clock budget of a run in seconds, at most 2592000 (30 "
        "days); then it is timed_out. Every run has a finite budget, so a hung "
        "run cannot block its model's later fires forever.",
    )
    memory_limit_bytes: int | None = Field(
        None,
        ge=768 * 1024 * 1024,
        le=2**50,
        description="Address-space limit (RLIMIT_AS) of the run's process, in bytes, "
        "from 805306368 (768 MiB) to 2**50. Default: none. The minimum is an "
        "estimate: the smallest limit under which the worker imported torch "
        "2.13.0+cpu and trained tabular-mlp on an 80-row CSV was 720 MiB (x86_64, "
        "2 CPUs). torch reserves address space per thread, so hosts with more CPUs "
        "need more. CUDA reserves large address ranges, so leave it unset for GPU "
        "runs.",
    )


class GateSection(_Section):
    plugin: str = Field(
        ...,
        description="Gate plugin: metric-threshold, no-regression, fairness or "
        "residency.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The gate's options."
    )

    @model_validator(mode="after")
    def _check_plugin(self) -> GateSection:
        plugin = _load_plugin("gate", self.plugin)
        self.options = _plugin_call(plugin.validate_options, self.options)
        return self


class ReleasePolicySection(_Section):
    """``[models.release]``: how a version of this model reaches production."""

    approvals_required: int = Field(
        1,
        ge=1,
        le=10,
        description="Approvers, other than the requester, who must approve a release.",
    )
    canary_weight: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share of requests the canary version answers, above 0 and "
        "below 1.",
    )
    window_seconds: float = Field(
        300.0,
        gt=0,
        le=604_800,
        description="Seconds a canary runs before its verdict is reached.",
    )
    min_requests: int = Field(
        100,
        ge=1,
        description="Logged canary requests needed before a verdict is reached; "
        "the canary waits beyond window_seconds until it has them.",
    )
    auto_promote: bool = Field(
        False,
        description="Promote a canary that passes its analysis without an approver.",
    )
    auto_abort: bool = Field(
        True, description="Abort a canary that fails its analysis without an approver."
    )
    max_error_rate_increase: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Largest rise of the error rate from feedback labels, canary "
        "minus stable, that passes (0.02 is two percentage points).",
    )
    min_labelled: int = Field(
        20,
        ge=1,
        description="Feedback labels both canary and stable need before their error "
        "rates are compared; with fewer the comparison is skipped.",
    )
    max_latency_p95_ratio: float = Field(
        1.5,
        ge=1,
        description="Largest canary p95 latency, as a multiple of stable's, that "
        "passes.",
    )
    latency_slack_seconds: float = Field(
        0.005,
        ge=0,
        description="Seconds the canary p95 may exceed the ratio by, so that "
        "sub-millisecond noise does not fail a canary.",
    )
    max_nonfinite_outputs: int = Field(
        0, ge=0, description="Canary rows with NaN or infinite outputs that still pass."
    )
    max_server_errors: int = Field(
        0,
        ge=0,
        description="Canary requests that failed inside the model (status 500) that "
        "still pass.",
    )


class DetectorSection(_Section):
    """A drift detector plugin and its options, for one kind of signal."""

    plugin: str = Field(
        "adwin",
        description="Detector plugin: adwin, kswin, page-hinkley, hddm-a, or an "
        "installed third-party one.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The detector's options (see docs/drift.md); unset ones take "
        "the plugin's defaults.",
    )

    @model_validator(mode="after")
    def _check_plugin(self) -> DetectorSection:
        plugin = _load_plugin("detector", self.plugin)
        self.options = _plugin_call(plugin.validate_options, self.options)
        return self


class ErrorDetectorSection(DetectorSection):
    """The error monitor's detector; HDDM_A takes the 0/1 errors as they are."""

    plugin: str = Field(
        "hddm-a",
        description="Detector plugin: hddm-a (for 0/1 values), adwin, kswin, "
        "page-hinkley, or an installed third-party one.",
    )


class MonitoringSection(_Section):
    """``[models.monitoring]``: drift monitors on this model's served traffic.

    One monitor watches each feature, one the prediction and one the error
    against feedback labels, for the stable and the canary version alike.
    docs/drift.md describes the method and each setting.
    """

    enabled: bool = Field(True, description="Watch this model for drift.")
    features: DetectorSection = Field(
        default_factory=DetectorSection,
        description="Detector of each feature monitor.",
    )
    prediction: DetectorSection = Field(
        default_factory=DetectorSection,
        description="Detector of the prediction monitor (label-free).",
    )
    error: ErrorDetectorSection = Field(
        default_factory=ErrorDetectorSection,
        description="Detector of the error monitor, fed 1 for each feedback label "
        "that differs from the predicted label and 0 for each that matches.",
    )
    confirm_rows: int = Field(
        100,
        ge=10,
        le=100_000,
        description="Values after a detection that the confirming z-test uses.",
    )
    confirm_z: float = Field(
        5.0,
        gt=0,
        le=100,
        description="z-score a detected change must reach to raise a drift event.",
    )
    baseline_rows: int = Field(
        1000,
        ge=10,
        le=100_000,
        description="Values before the estimated change point that the z-test "
        "compares with.",
    )
    history_rows: int = Field(
        2000,
        ge=100,
        le=100_000,
        description="Values each monitor keeps for the z-test and replays into its "
        "detector after a restart.",
    )
    warmup_rows: int = Field(
        500,
        ge=50,
        le=100_000,
        description="Values a monitor collects to build its reference when the "
        "version stores none (the prediction, or a feature missing from it).",
    )
    cooldown_rows: int = Field(
        1000,
        ge=1,
        description="Values without a confirmed change after which a drifting "
        "monitor is watching again and may raise a new event.",
    )
    retrain_on_drift: bool = Field(
        False,
        description="Fire the model's training job when the stable version drifts.",
    )
    retrain_cooldown_seconds: float = Field(
        21_600.0,
        gt=0,
        description="Seconds after a drift-fired training run before drift may fire "
        "another.",
    )
    retrain_min_labels: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="Feedback labels of this model that must arrive after the drift "
        "event before the retraining run starts, so that the new version learns "
        "from labelled traffic after the change (needs dataset.include_feedback). "
        "0 starts the run at once.",
    )
    abort_canary_on_drift: bool = Field(
        True,
        description="Abort the canary when one of its monitors drifts while the "
        "same monitor of the stable version does not.",
    )

    @model_validator(mode="after")
    def _check_history(self) -> MonitoringSection:
        needed = self.baseline_rows + self.confirm_rows
        if self.history_rows <= needed:
            raise ValueError(
                f"history_rows ({self.history_rows}) must exceed baseline_rows plus "
                f"confirm_rows ({needed}), so that the z-test finds its values"
            )
        return self


class ModelSection(_Section):
    name: str = Field(
        ...,
        pattern=MODEL_NAME_PATTERN,
        description="Model name; also the name of its training job. Letters, digits, "
        "'_' and '-'.",
    )
    description: str = Field("", max_length=500, description="Shown in the console.")
    dataset: DatasetSection
    recipe: RecipeSection
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    gates: list[GateSection] = Field(
        default_factory=list,
        description="Checks each new version must pass to be released.",
    )
    release: ReleasePolicySection = Field(
        default_factory=ReleasePolicySection,
        description="Approvals and canary analysis for releases of this model.",
    )
    monitoring: MonitoringSection = Field(
        default_factory=MonitoringSection,
        description="Drift monitors on the traffic this model serves.",
    )

    @model_validator(mode="after")
    def _check_retrain_labels(self) -> ModelSection:
        if self.monitoring.retrain_min_labels and not self.dataset.include_feedback:
            raise ValueError(
                f"monitoring.retrain_min_labels is "
                f"{self.monitoring.retrain_min_labels}, but the run would not train "
                "on those labels; set [models.dataset] include_feedback = true, or "
                "retrain_min_labels = 0."
            )
        return self


class TrainingSection(_Section):
    max_concurrent_runs: int = Field(
        1, ge=1, le=64, description="Runs that may train at the same time on this host."
    )
    cancel_grace_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds between SIGTERM and SIGKILL when a run is cancelled or "
        "times out.",
    )


class ServingSection(_Section):
    """``[serving]``: the worker process that serves deployed versions."""

    enabled: bool = Field(
        True,
        description="Start the serving worker once a model has a deployment; with "
        "false nothing is served.",
    )
    host: str = Field("127.0.0.1", description="Address the serving worker listens on.")
    port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="Serving port; 0 picks a free one, which restarts of the worker "
        "keep.",
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate; needed off loopback unless insecure."
    )
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    insecure: bool = Field(
        False,
        description="Allow plain HTTP on a non-loopback address (logs a warning).",
    )
    predict_token_sha256: list[str] = Field(
        default_factory=list,
        description="SHA-256 hex digests of the bearer tokens accepted for inference "
        "and feedback (the predict scope). Empty: no token is needed.",
    )
    max_body_bytes: int = Field(
        8_388_608,
        gt=0,
        description="Largest inference or feedback body accepted, in bytes.",
    )
    max_batch_rows: int = Field(
        1024,
        ge=1,
        le=1_000_000,
        description="Most rows one inference request may carry.",
    )
    log_sample_rate: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of answered requests whose rows are logged to the "
        "predictions table, for canary analysis, drift monitors and feedback.",
    )
    log_flush_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Seconds between two batched writes of logged predictions.",
    )
    poll_seconds: float = Field(
        0.05,
        gt=0,
        le=10,
        description="Seconds between two reads of the deployments by the worker; a "
        "swap or rollback takes effect within this time plus any model load.",
    )
    analysis_interval_seconds: float = Field(
        1.0, gt=0, le=3600, description="Seconds between two canary analyses."
    )
    cpu_threads: int = Field(
        1, ge=1, le=256, description="torch intra-op threads in the serving worker."
    )
    restart_backoff_seconds: float = Field(
        0.5,
        gt=0,
        le=600,
        description="Seconds before the first restart of a crashed worker; doubles "
        "with each crash up to restart_backoff_max_seconds.",
    )
    restart_backoff_max_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest wait between two restarts, in seconds.",
    )
    max_restarts: int = Field(
        5,
        ge=0,
        le=1000,
        description="Crashes within restart_window_seconds after which the worker "
        "is left stopped and a critical alert is raised.",
    )
    restart_window_seconds: float = Field(
        300.0, gt=0, description="Seconds over which crashes are counted."
    )
    stop_grace_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds between SIGTERM and SIGKILL when the worker stops.",
    )

    @field_validator("predict_token_sha256")
    @classmethod
    def _check_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    f"{digest!r} is not a SHA-256 hex digest; store the output of "
                    "`printf %s TOKEN | sha256sum`, never the token itself"
                )
        return value

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> ServingSection:
        _check_listener(self)
        return self


class DriftSection(_Section):
    """``[drift]``: the thread that runs every model's drift monitors."""

    queue_rows: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="Rows that may wait for the drift thread; further rows are "
        "skipped and counted per monitor.",
    )
    sample_above: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of queue_rows above which only one row in sample_every "
        "is queued; the others are skipped and counted.",
    )
    sample_every: int = Field(
        10, ge=2, le=10_000, description="Rows per queued row while sampling."
    )
    checkpoint_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds between two writes of monitor state to the store; a "
        "drift event writes it at once.",
    )
    poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between two reads of new feedback labels for the error "
        "monitors.",
    )


NOTIFIER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class NotifierSection(_Section):
    """``[[notifiers]]``: where alerts are delivered besides the API."""

    name: str = Field(
        ...,
        pattern=NOTIFIER_NAME_PATTERN,
        description="Name of this notifier in logs and in the notifications table.",
    )
    plugin: str = Field(
        ...,
        description="Notifier plugin: log, webhook, or an installed third-party one.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The plugin's options (see docs/drift.md)."
    )
    min_severity: str = Field(
        "warning",
        pattern=r"^(info|warning|critical)$",
        description="Least severe alert delivered: info, warning or critical.",
    )
    max_attempts: int = Field(
        4, ge=1, le=20, description="Delivery attempts per alert, the first included."
    )
    backoff_seconds: float = Field(
        1.0,
        ge=0,
        le=300,
        description="Seconds before the second attempt; doubled for each further "
        "attempt, up to 300.",
    )

    @model_validator(mode="after")
    def _check_plugin(self) -> NotifierSection:
        plugin = _load_plugin("notifier", self.plugin)
        self.options = _plugin_call(plugin.validate_options, self.options)
        return self


class AgentConfig(_Section):
    agent: AgentSection = Field(default_factory=AgentSection)
    api: ApiSection = Field(default_factory=ApiSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    store: StoreSection = Field(default_factory=StoreSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    serving: ServingSection = Field(default_factory=ServingSection)
    drift: DriftSection = Field(default_factory=DriftSection)
    models: list[ModelSection] = Field(
        default_factory=list, description="Models this agent trains and serves."
    )
    notifiers: list[NotifierSection] = Field(
        default_factory=list,
        description="Where alerts are delivered: the log, a webhook, or a plugin.",
    )

    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _unique_model_names(self) -> AgentConfig:
        names = [model.name for model in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"model names must be unique; repeated: {', '.join(duplicates)}"
            )
        return self

    @model_validator(mode="after")
    def _unique_notifier_names(self) -> AgentConfig:
        names = [notifier.name for notifier in self.notifiers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"notifier names must be unique; repeated: {', '.join(duplicates)}"
            )
        return self

    def model(self, name: str) -> ModelSection | None:
        return next((model for model in self.models if model.name == name), None)

    @property
    def data_dir(self) -> Path:
        return self.agent.data_dir

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.db"


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate ``agent.toml``; raise ConfigError naming every bad key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            ["the file does not exist; create one with `rigdeck-agent init DIR`"],
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), [f"not valid TOML: {error}"]) from error
    except UnicodeDecodeError as error:
        raise ConfigError(
            str(path), [f"not UTF-8 text (byte {error.start}); save it as UTF-8"]
        ) from error
    except OSError as error:
        raise ConfigError(str(path), [f"cannot be read: {error.strerror}"]) from error
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> AgentConfig:
    try:
        config = AgentConfig.model_validate(
            raw, context={"base_dir": path.resolve().parent}
        )
    except ValidationError as error:
        raise ConfigError(
            str(path), [_describe(problem) for problem in error.errors()]
        ) from None
    base = path.resolve().parent
    config.path = path.resolve()
    config.agent.data_dir = (base / config.agent.data_dir).resolve()
    for section, key in (
        ("api", "tls_cert"),
        ("api", "tls_key"),
        ("serving", "tls_cert"),
        ("serving", "tls_key"),
    ):
        value = getattr(getattr(config, section), key)
        if value is not None:
            setattr(getattr(config, section), key, (base / value).resolve())
    _check_paths(config, path)
    return config


def _check_paths(config: AgentConfig, path: Path) -> None:
    """Reject paths that would only fail once the agent is half started."""
    problems = []
    if config.data_dir.exists() and not config.data_dir.is_dir():
        problems.append(
            f"agent.data_dir: {config.data_dir} exists and is not a directory"
        )
    for section in ("api", "serving"):
        for key in ("tls_cert", "tls_key"):
            value = getattr(getattr(config, section), key, None)
            if value is not None and not value.is_file():
                problems.append(f"{section}.{key}: the file {value} does not exist")
    if problems:
        raise ConfigError(str(path), problems)


def _describe(problem: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    if problem["type"] == "extra_forbidden":
        return f"{key}: unknown key; check its spelling against `rigdeck-agent init`"
    message = problem["msg"].removeprefix("Value error, ")
    value = problem.get("input")
    shown = "" if isinstance(value, dict) else f" (got {_shorten(repr(value))})"
    return f"{key}: {message}{shown}"


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
