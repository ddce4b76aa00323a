"""A small client for the control plane's REST API (`/api/v1`)."""

from __future__ import annotations

from typing import Any

import httpx

from mallard.config import Profile, resolve


class ApiError(Exception):
    """The control plane refused a request, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field


class ControlPlaneClient:
    """`ControlPlaneClient()` uses the environment or the active profile (see `mallard.config`)."""

    def __init__(self, profile: Profile | None = None, *, timeout: float = 30.0) -> None:
        self.profile = profile or resolve()
        self._http = httpx.Client(
            base_url=self.profile.api_url + "/api/v1",
            headers={"Authorization": f"Bearer {self.profile.api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the control plane at {self.profile.api_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                err = body.get("error") or {}
                if not err and "detail" in body:
                    err = {"message": str(body["detail"])}
            except ValueError:
                err = {"message": response.text[:500]}
            raise ApiError(
                err.get("message") or f"HTTP {response.status_code}",
                status=response.status_code,
                code=err.get("code", ""),
                field=err.get("field"),
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any | None = None, **params: Any) -> Any:
        return self.request("POST", path, json=json if json is not None else {}, params=params or None)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
