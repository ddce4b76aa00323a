"""A client for the data plane's REST API (`/v1` on the agent), authenticated with short-lived
JWTs that the control plane signs. Contexts, logs and artifacts flow here, never through the
control plane."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx

from mallard.client import ApiError, ControlPlaneClient

CHUNK = 1 << 20


def _raise_error(response: httpx.Response) -> NoReturn:
    """Raise the data plane's error answer (`{"error": {...}}`, or the start of the body) as an ApiError."""
    try:
        err = response.json().get("error") or {}
    except ValueError:
        err = {"message": response.text[:300]}
    raise ApiError(
        err.get("message") or f"HTTP {response.status_code}",
        status=response.status_code,
        code=err.get("code", ""),
        field=err.get("field"),
    )


class DataPlaneClient:
    def __init__(self, control_plane: ControlPlaneClient, url: str | None = None, *, timeout: float = 60.0) -> None:
        base = url or control_plane.profile.data_plane_url
        if not base:
            raise ApiError(
                "no data plane configured: set MALLARD_DATA_PLANE_URL or run `mallard dev up` (it writes a profile)"
            )
        self.url = base.rstrip("/")
        self._cp = control_plane
        self._token = ""
        self._token_expires = 0.0
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DataPlaneClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        if time.time() > self._token_expires - 60:
            issued = self._cp.post("/data-plane/token")
            self._token = issued["token"]
            self._token_expires = time.time() + 300  # tokens live longer; refresh well before
        return {"Authorization": f"Bearer {self._token}"}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = {**self._headers(), **kwargs.pop("headers", {})}
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the data plane at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            _raise_error(response)
        return response

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/v1/version").json()
        return result

    def lake_query(self, sql: str, *, limit: int | None = None) -> dict[str, Any]:
        """Run one SELECT over the inference lake (`predictions`); `columns`, `rows`, `truncated`."""
        body: dict[str, Any] = {"sql": sql}
        if limit is not None:
            body["limit"] = limit
        result: dict[str, Any] = self._request("POST", "/v1/lake/query", json=body).json()
        return result

    def model_schema(self, model: str) -> dict[str, Any]:
        """The inputs and outputs of the model the data plane serves under `model`."""
        result: dict[str, Any] = self._request("GET", f"/v1/models/{model}/schema").json()
        return result

    def predict(
        self,
        model: str,
        *,
        body: dict[str, Any] | None = None,
        arrow: bytes | None = None,
        request_id: str | None = None,
        timeout_ms: int | None = None,
    ) -> httpx.Response:
        """POST /v1/models/{model}/predict with a JSON body (records or columns) or Arrow IPC bytes."""
        headers: dict[str, str] = {}
        if request_id:
            headers["X-Request-Id"] = request_id
        if timeout_ms:
            headers["X-Mallard-Timeout-Ms"] = str(timeout_ms)
        if arrow is not None:
            headers["Content-Type"] = "application/vnd.apache.arrow.stream"
            return self._request("POST", f"/v1/models/{model}/predict", content=arrow, headers=headers)
        return self._request("POST", f"/v1/models/{model}/predict", json=body, headers=headers)

    def token(self) -> str:
        """A current data-plane JWT (also for the gRPC API)."""
        return self._headers()["Authorization"].split(" ", 1)[1]

    def upload_context(
        self, path: Path, digest: str, *, progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while block := fh.read(CHUNK):
                    if progress:
                        progress(len(block))
                    yield block

        response = self._request("PUT", f"/v1/contexts/{digest}", content=chunks())
        result: dict[str, Any] = response.json()
        return result

    def build(self, build_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._request("GET", f"/v1/builds/{build_id}").json()
            return result
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def logs(self, build_id: str, offset: int = 0) -> tuple[bytes, int, str]:
        """(new log bytes, next offset, build status) for polling a build's log."""
        response = self._request("GET", f"/v1/builds/{build_id}/logs", params={"offset": offset})
        next_offset = int(response.headers.get("x-log-offset", offset + len(response.content)))
        return response.content, next_offset, response.headers.get("x-build-status", "")

    def download_artifact(self, digest: str, out: Path) -> Path:
        with self._http.stream("GET", f"/v1/artifacts/{digest}", headers=self._headers()) as response:
            if response.status_code >= 400:
                raise ApiError(
                    f"artifact {digest} not available: HTTP {response.status_code}", status=response.status_code
                )
            with open(out, "wb") as fh:
                for block in response.iter_bytes(CHUNK):
                    fh.write(block)
        return out

    def online_features(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/features/online`: current values of many keys x features in one call."""
        result: dict[str, Any] = self._request("POST", "/v1/features/online", json=body).json()
        return result

    def historical_features(self, entities: Path, out: Path, params: dict[str, Any]) -> int:
        """`POST /v1/features/historical`: upload the entity file, stream the Parquet answer to `out`.
        Returns the number of rows (every entity row). Nothing is left at `out` on an error."""

        def chunks() -> Iterator[bytes]:
            with open(entities, "rb") as fh:
                while block := fh.read(CHUNK):
                    yield block

        params = {"format": "csv" if entities.suffix.lower() == ".csv" else "parquet", **params}
        try:
            with self._http.stream(
                "POST", "/v1/features/historical", params=params, content=chunks(), headers=self._headers()
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_error(response)
                out.parent.mkdir(parents=True, exist_ok=True)
                with open(out, "wb") as fh:
                    for block in response.iter_bytes(CHUNK):
                        fh.write(block)
                return int(response.headers.get("x-rows", "0"))
        except httpx.HTTPError as exc:
            out.unlink(missing_ok=True)
            raise ApiError(f"cannot reach the data plane at {self.url}: {exc}") from exc
