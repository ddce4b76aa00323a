"""The agent's one settings class (MALLARD_AGENT_* environment variables or CLI flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    """Where the agent keeps its identity and state, and how it reaches the control plane."""

    model_config = SettingsConfigDict(env_prefix="MALLARD_AGENT_", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path.home() / ".mallard" / "agent")
    control_plane: str = ""  # HOST:PORT of the gateway's agent link (mTLS)
    enroll_address: str = ""  # HOST:PORT of enrollment; default: link port + 1
    ca_file: Path | None = None  # CA that signed the gateway's server certificate
    join_token: str = ""
    tenant_id: str = ""  # optional pin: refuse a join token of another tenant
    tls_server_name: str = ""  # override the name checked in the gateway certificate

    data_plane_host: str = "127.0.0.1"
    data_plane_port: int = 8710
    data_plane_url: str = ""  # advertised URL; default http://host:port
    data_plane_grpc_port: int = 8711  # gRPC prediction API on data_plane_host; 0 turns it off
    predict_max_rows: int = 100_000  # per prediction request (REST and gRPC)
    predict_max_bytes: int = 16 * 1024 * 1024

    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    keepalive_time_ms: int = 30_000
    keepalive_timeout_ms: int = 10_000
    max_concurrent_commands: int = 4
    outbox_window: int = 256
    shutdown_grace_seconds: float = 10.0

    # Builds and the object store (data_plane_agent/builds, data_plane_agent/storage).
    store_url: str = ""  # file:///path or s3://bucket/prefix; default: a directory <home>/store
    s3_endpoint_url: str = ""  # any S3-compatible server; credentials from the usual AWS_* variables
    s3_region: str = ""
    max_concurrent_builds: int = 2
    max_context_bytes: int = 200 * 1024 * 1024
    build_timeout_seconds: float = 3600.0
    docker_base_image: str = "mallard-base:bookworm"
    sdk_wheel: Path | None = None  # the Mallard SDK wheel for build environments; default: built from source

    # Inference lake (data_plane_agent/lake): spool in <home>/lake/spool, Parquet in the store.
    lake_flush_interval_seconds: float = 30.0  # Parquet file cadence (queries also see unflushed rows)
    lake_flush_rows: int = 20_000
    lake_fsync_interval_seconds: float = 1.0  # the loss window on a power loss / kernel crash
    lake_query_max_rows: int = 10_000
    lake_query_timeout_seconds: float = 30.0

    # Feature store (data_plane_agent/features): offline Parquet in the store, online SQLite or Redis.
    features_online_url: str = ""  # sqlite:///path or redis://host:port/db; default <home>/features/online.sqlite
    features_redis_url: str = ""  # Redis of stream feature sets that name none
    features_memory_limit: str = "2GB"  # DuckDB's cap for joins and materialization (spills beyond)
    features_schedule_interval_seconds: float = 30.0  # how often schedules are checked
    features_materialize_concurrency: int = 2  # feature sets materialized at once (one set: one run at a time)

    @property
    def effective_enroll_address(self) -> str:
        if self.enroll_address:
            return self.enroll_address
        host, _, port = self.control_plane.rpartition(":")
        return f"{host}:{int(port) + 1}"

    @property
    def effective_data_plane_url(self) -> str:
        return self.data_plane_url or f"http://{self.data_plane_host}:{self.data_plane_port}"
