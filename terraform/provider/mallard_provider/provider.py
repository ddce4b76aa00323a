"""The provider: its configuration block and the resources and data sources it serves."""

from __future__ import annotations

import os
from typing import Any

from tf.iface import Config, DataSource, Provider, Resource
from tf.schema import Attribute, Schema
from tf.types import String, Unknown
from tf.utils import Diagnostics

from mallard_provider.api_key import ApiKeyResource
from mallard_provider.client import ApiError, MallardClient
from mallard_provider.data_sources import AgentsDataSource, ProjectsDataSource
from mallard_provider.errors import add_api_error
from mallard_provider.join_token import JoinTokenResource
from mallard_provider.project import ProjectResource

SOURCE = "registry.terraform.io/mallard/mallard"


class MallardProvider(Provider):
    """`provider "mallard" { api_url = ..., api_key = ... }`, or MALLARD_API_URL / MALLARD_API_KEY."""

    def __init__(self) -> None:
        self._client: MallardClient | None = None

    @property
    def client(self) -> MallardClient:
        if self._client is None:  # Terraform always configures the provider before using it
            raise RuntimeError("the mallard provider was used before it was configured")
        return self._client

    def get_model_prefix(self) -> str:
        return "mallard_"

    def full_name(self) -> str:
        return SOURCE

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            attributes=[
                Attribute(
                    "api_url",
                    String(),
                    description="Control-plane URL, such as https://mallard.example.com. Default: MALLARD_API_URL.",
                    optional=True,
                ),
                Attribute(
                    "api_key",
                    String(),
                    description="API key (mk.<id>.<secret>). Default: MALLARD_API_KEY.",
                    optional=True,
                    sensitive=True,
                ),
            ]
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        url = config.get("api_url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            diags.add_error(
                f"Invalid api_url {url!r}",
                "api_url must start with http:// or https://, e.g. https://mallard.example.com",
                path=["api_url"],
            )

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        url = _setting(config, "api_url", "MALLARD_API_URL")
        key = _setting(config, "api_key", "MALLARD_API_KEY")
        for attribute, env, value in (("api_url", "MALLARD_API_URL", url), ("api_key", "MALLARD_API_KEY", key)):
            if not value:
                diags.add_error(
                    f"Missing {attribute}",
                    f'Set {attribute} in the provider "mallard" block or the {env} environment variable.',
                    path=[attribute],
                )
        if diags.has_errors():
            return
        assert url is not None and key is not None
        client = MallardClient(url, key)
        try:
            # One cheap call up front, so a wrong URL or key fails the plan before anything changes.
            client.me()
        except ApiError as exc:
            blame = {0: "api_url", 401: "api_key"}.get(exc.status)
            add_api_error(diags, exc, doing=f"use the Mallard API at {client.api_url}", fields={}, attribute=blame)
            return
        self._client = client

    def get_data_sources(self) -> list[type[DataSource]]:
        return [ProjectsDataSource, AgentsDataSource]

    def get_resources(self) -> list[type[Resource]]:
        return [ProjectResource, ApiKeyResource, JoinTokenResource]


def _setting(config: Config, attribute: str, env: str) -> str | None:
    value: Any = config.get(attribute)
    if value is None or value is Unknown:
        value = os.environ.get(env)
    return str(value) if value else None
