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
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        if (
            self.host not in LOOPBACK_HOSTS
            and self.tls_cert is None
            and not self.insecure
        ):
            raise ValueError(
                f"host {self.host!r} is not loopback: set tls_cert and tls_key, "
                "or insecure = true to accept plain HTTP"
            )
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
        self.options = _plugin_call(
            plugin.validate_options, self.options, base_dir=_base_dir(info)
        )
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
        None, gt=0, description="Seconds between fires; an alternative to cron."
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
        description="Wall-clock budget of a run in seconds; then it is timed_out.",
    )
    memory_limit_bytes: int | None = Field(
        None,
        ge=64 * 1024 * 1024,
        description="Address-space limit (RLIMIT_AS) of the run's process, in bytes. "
        "Default: none. CUDA reserves large address ranges, so leave it unset for "
        "GPU runs.",
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


class AgentConfig(_Section):
    agent: AgentSection = Field(default_factory=AgentSection)
    api: ApiSection = Field(default_factory=ApiSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    store: StoreSection = Field(default_factory=StoreSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    models: list[ModelSection] = Field(
        default_factory=list, description="Models this agent trains and serves."
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
    ):
        value = getattr(getattr(config, section), key)
        if value is not None:
            setattr(getattr(config, section), key, (base / value).resolve())
    return config


def _describe(problem: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    if problem["type"] == "extra_forbidden":
        return f"{key}: unknown key; check its spelling against `rigdeck-agent init`"
    message = problem["msg"].removeprefix("Value error, ")
    value = problem.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{key}: {message}{shown}"
