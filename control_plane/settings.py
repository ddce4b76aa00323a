"""The control plane's one settings class, read from MALLARD_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings shared by the API, the gateway and the scheduler processes."""

    model_config = SettingsConfigDict(env_prefix="MALLARD_", extra="ignore")

    home: Path = Field(default=Path.home() / ".mallard" / "control-plane", alias="MALLARD_CP_HOME")
    database_url: str | None = None
    broker_url: str | None = None  # None: embedded filesystem transport under `home`

    api_host: str = "127.0.0.1"
    api_port: int = 8700
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8701  # the agent link (mTLS required)
    gateway_enroll_port: int = 8702  # enrollment (server TLS; no client certificate yet)
    # Hostnames/IPs put in the gateway's server certificate.
    gateway_tls_names: list[str] = ["localhost", "127.0.0.1", "::1"]

    cert_lifetime_seconds: int = 24 * 3600
    cert_backdate_seconds: int = 300
    heartbeat_interval_ms: int = 10_000
    offline_after_missed_heartbeats: int = 3
    join_token_default_ttl_seconds: int = 900
    join_token_max_ttl_seconds: int = 7 * 24 * 3600
    # How long finished (expired, redeemed or revoked) join tokens are kept before the scheduler purges them.
    join_token_retention_seconds: int = 7 * 24 * 3600
    command_ttl_seconds: int = 3600
    # A QUEUED/RUNNING build fails when its agent has not been heard from for this long.
    build_lease_seconds: float = 120.0
    data_plane_token_ttl_seconds: int = 900
    # When set, POST /api/v1/bootstrap also needs this value in the X-Bootstrap-Token header, so
    # a freshly started public control plane cannot be claimed by whoever reaches it first.
    bootstrap_token: str | None = None

    max_message_bytes: int = 1 << 20
    max_connection_age_seconds: int = 3600
    max_connection_age_grace_seconds: int = 30
    keepalive_time_ms: int = 20_000
    keepalive_timeout_ms: int = 10_000
    command_poll_interval_ms: int = 25
    revocation_check_interval_ms: int = 500
    scheduler_interval_seconds: float = 5.0
    # When set, every message crossing the agent link is appended here as JSON (see gateway/wiretap.py).
    wire_log: Path | None = None

    @property
    def pki_dir(self) -> Path:
        return self.home / "pki"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'control-plane.db'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def offline_after_seconds(self) -> float:
        return self.heartbeat_interval_ms / 1000 * self.offline_after_missed_heartbeats


@lru_cache
def get_settings() -> Settings:
    return Settings()
