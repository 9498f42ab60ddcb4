"""The agent's TOML configuration, validated when it loads.

Every error names the file, the key and the bad value. Relative paths
are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class AgentConfig(_Section):
    agent: AgentSection = Field(default_factory=AgentSection)
    api: ApiSection = Field(default_factory=ApiSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    store: StoreSection = Field(default_factory=StoreSection)
    models: list[dict[str, Any]] = Field(
        default_factory=list, description="Models this agent trains and serves."
    )

    path: Path | None = Field(None, exclude=True)

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
        config = AgentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(
            str(path), [_describe(problem) for problem in error.errors()]
        ) from None
    base = path.resolve().parent
    config.path = path.resolve()
    config.agent.data_dir = (base / config.agent.data_dir).resolve()
    for section, key in (("api", "tls_cert"), ("api", "tls_key")):
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
