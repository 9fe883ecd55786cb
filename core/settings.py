"""Platform settings: every knob is a `MEDSERVE_*` environment variable (pydantic-settings).

Settings are built once at a process's entry point and passed in; code paths never read
`os.environ` themselves.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODELS = [
    "echo", "roentgen-v2", "medvae-4-1-2d", "medvae-8-1-3d", "medval-4b",
    "merlin", "merlin-five-year",
    "srrg-findings", "srrg-impression", "srr-bert-leaves-with-statuses",
]  # fmt: skip


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CommonSettings(BaseSettings):
    """What every role reads: where state lives, Redis, logging, the route table, engines."""

    model_config = SettingsConfigDict(env_prefix="MEDSERVE_", extra="ignore")

    # Where things live.
    home: Path = Field(Path("var"), description="Root for state when the other paths are unset.")
    model_dir: Path | None = Field(None, description="Model store (default: <home>/models).")
    artifact_dir: str | None = Field(
        None, description="Job artifacts: a folder or an fsspec URL (default: <home>/artifacts)."
    )
    redis_url: str | None = Field(None, description="Unset: `serve` starts an embedded Redis.")
    job_visibility_timeout_s: int = Field(
        6 * 3600, description="Celery redelivers an unacknowledged job after this long."
    )

    # How a gateway or a job runner reaches the model workers.
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Model -> worker base URL(s), JSON: {"echo": "http://a"} or '
        '{"echo": ["http://a", "http://b"]} (replicas: balanced per request).',
    )
    worker_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Workers whose model index is discovered; `dns+http://host:port` stands "
        "for every address of `host` (a headless Service: one replica per pod).",
    )
    upstream_timeout_s: float = 600.0
    max_body_mb: float = Field(512.0, description="Largest request body accepted.")
    drain_timeout_s: float = 30.0

    # Engines for language models (the gateway and benchmark jobs call them).
    vllm_base_url: str | None = Field(None, description="OpenAI-compatible vLLM server base URL.")
    vllm_model: str | None = Field(None, description="Served model name on that server.")
    vllm_api_key: str | None = None

    # Compute (model workers and training runners).
    torch_threads: int | None = Field(
        None, description="torch intra-op threads per worker or job runner (unset: torch's)."
    )

    # Observability.
    log_level: str = "INFO"
    log_json: bool | None = Field(
        None, description="JSON log lines; unset: text on a terminal, JSON otherwise."
    )

    @field_validator("worker_urls", mode="before")
    @classmethod
    def _csv_urls(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("routes", mode="before")
    @classmethod
    def _route_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @property
    def model_root(self) -> Path:
        return self.model_dir or self.home / "models"

    @property
    def artifact_root(self) -> str:
        return self.artifact_dir or str(self.home / "artifacts")


class GatewaySettings(CommonSettings):
    """The gateway: bind, auth, rate limits, health polling."""

    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = Field(None, description="OIP gRPC port of the gateway (unset: off).")
    insecure: bool = Field(False, description="Allow a non-loopback bind with no API keys.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated `key` or `key:tenant` entries; empty disables auth.",
    )
    rate_limit_per_minute: int = Field(0, description="Requests per API key per minute; 0 = off.")
    max_inflight: int = Field(
        1024,
        ge=1,
        description="Requests the gateway holds at once; past it new ones get 503 + Retry-After "
        "at the door (load shedding), probes and metrics excepted.",
    )
    health_interval_s: float = 1.0
    worker_devices: dict[str, str] = Field(
        default_factory=dict,
        description="Worker URL -> device it runs on (`serve` sets it from its placement plan; "
        "shown per replica in /v1/models).",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _csv_keys(cls, value: Any) -> Any:
        return _split_csv(value)

    @property
    def tenants_by_key(self) -> dict[str, str]:
        """API key -> tenant. `key` alone belongs to the tenant "default"."""
        table: dict[str, str] = {}
        for entry in self.api_keys:
            key, _, tenant = entry.partition(":")
            table[key] = tenant or "default"
        return table

    def check_bind(self, host: str) -> None:
        """Refuse an open, unauthenticated bind unless `insecure` is set."""
        if self.api_keys or self.insecure:
            return
        if host in ("localhost",):
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise ValueError(
            f"refusing to bind {host} with no API keys: set MEDSERVE_API_KEYS, "
            "bind 127.0.0.1, or pass --insecure"
        )


class WorkerSettings(CommonSettings):
    """A model worker: what it hosts, on which device, how it batches."""

    models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    worker_port: int = 8100
    worker_grpc_port: int | None = Field(None, description="A worker's OIP gRPC port (unset: off).")
    worker_uds: str | None = Field(
        None, description="Also serve HTTP on this unix socket, for a gateway on the same host."
    )
    max_batch_size: int | None = Field(None, description="Override every model's batch size.")
    adapter_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-model overrides of a manifest's `adapter` block, as JSON: "
        '{"roentgen-v2": {"compile_gpu": "reduce-overhead"}}; unknown keys are refused at load.',
    )
    max_queue_delay_ms: float | None = None
    max_queue_size: int | None = None
    request_timeout_s: float = 300.0
    allow_random_weights: bool = Field(
        True, description="Serve tiny random weights when a model was never pulled."
    )

    @field_validator("models", mode="before")
    @classmethod
    def _csv_models(cls, value: Any) -> Any:
        return _split_csv(value)


class JobSettings(CommonSettings):
    """A job runner: leases and shards."""

    job_shard_size: int = 16
    job_lease_s: float = Field(
        30.0,
        description="A job runner's lease; a job whose runner is silent this long is requeued.",
    )


class Settings(GatewaySettings, WorkerSettings, JobSettings):
    """Every role's settings at once: what `medserve serve` (the embedded default) reads."""

    num_workers: int = Field(
        1, description="Worker processes `serve` starts when there is no GPU (models spread)."
    )
    gpus: str | None = Field(
        None,
        description="GPUs `serve` places workers on: `0,1` or with memory `0:80,1:80` (GB); "
        "`none` for CPU only; unset: torch's view when torch is installed, else none.",
    )
    placement_file: Path | None = Field(
        None, description="YAML/JSON placement plan replacing the computed one (docs/scaling.md)."
    )
