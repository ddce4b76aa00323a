"""The control plane's admin REST API (`/api/v1`), as the provider needs it.

Every failure becomes an `ApiError` carrying the HTTP status and the field the API named, so
resources can turn it into a Terraform diagnostic pointing at the offending attribute.
"""

from __future__ import annotations

from typing import Any

import httpx

USER_AGENT = "terraform-provider-mallard"


class ApiError(Exception):
    """The control plane refused a request, or could not be reached (`status` 0)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    @property
    def not_found(self) -> bool:
        return self.status == 404

    def __str__(self) -> str:
        where = f"HTTP {self.status} {self.code}" if self.status else self.code
        return f"{self.message} ({where})"


class MallardClient:
    """Thin, synchronous wrapper over the routes the provider uses."""

    def __init__(self, api_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        base = api_url.rstrip("/")
        if base.endswith("/api/v1"):
            base = base[: -len("/api/v1")]
        self.api_url = base
        self._http = httpx.Client(
            base_url=base + "/api/v1",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=timeout,
        )

    def request(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the Mallard API at {self.api_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # ---- identity --------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return dict(self.request("GET", "/me"))

    # ---- projects --------------------------------------------------------------------------

    def list_projects(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/projects"))

    def get_project(self, id_or_name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/projects/{id_or_name}"))

    def create_project(self, *, name: str, description: str) -> dict[str, Any]:
        return dict(self.request("POST", "/projects", json={"name": name, "description": description}))

    def update_project(self, project_id: str, *, description: str) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/projects/{project_id}", json={"description": description}))

    def delete_project(self, project_id: str) -> None:
        self.request("DELETE", f"/projects/{project_id}")

    # ---- API keys (the API has no GET by id: read from the listing) ------------------------

    def find_api_key(self, key_id: str) -> dict[str, Any] | None:
        return next((k for k in self.request("GET", "/api-keys") if k["id"] == key_id), None)

    def create_api_key(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/api-keys", json=body))

    def revoke_api_key(self, key_id: str) -> None:
        self.request("DELETE", f"/api-keys/{key_id}")

    # ---- join tokens (no GET by id either) -------------------------------------------------

    def find_join_token(self, token_id: str) -> dict[str, Any] | None:
        return next((t for t in self.request("GET", "/join-tokens") if t["id"] == token_id), None)

    def create_join_token(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/join-tokens", json=body))

    def revoke_join_token(self, token_id: str) -> None:
        self.request("DELETE", f"/join-tokens/{token_id}")

    # ---- agents ----------------------------------------------------------------------------

    def list_agents(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/agents"))

    def revoke_agent(self, agent_id: str) -> None:
        self.request("POST", f"/agents/{agent_id}/revoke")


def _error_from(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ApiError(
            response.status_code,
            str(error.get("code") or "error"),
            str(error.get("message") or response.reason_phrase),
            error.get("field") or None,
        )
    text = response.text.strip()[:300] or response.reason_phrase
    return ApiError(response.status_code, "http_error", f"unexpected response from the Mallard API: {text}")
