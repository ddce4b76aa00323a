"""Feature retrieval on the data plane: online values (many keys x features in one call) and
point-in-time correct training sets (an entity file in, a Parquet file out). Feature values are
served here only; they never go to the control plane."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.responses import Response

from data_plane_agent.api.online_features import ONLINE_PATH, online_endpoint
from data_plane_agent.api.tokens import TokenVerifier
from data_plane_agent.features.engine import parse_ref
from data_plane_agent.features.service import FeatureService
from data_plane_agent.storage import URI_SCHEME, ObjectStore
from shared.errors import InvalidInput, NotFound
from shared.jwt_tokens import DataPlaneClaims

MAX_ENTITY_BYTES = 4 * 1024**3
CHUNK = 1 << 20


def features_router(
    *,
    service: FeatureService,
    store: ObjectStore | None,
    verifier: TokenVerifier,
    online: Callable[[Request], Awaitable[Response]] | None = None,
) -> APIRouter:
    """The routes over `service`'s engine; tokens are checked with `verifier` (cached, offline).
    `online`: the online endpoint, when the caller also dispatches it ahead of FastAPI."""
    router = APIRouter(prefix="/v1/features", tags=["features"])
    engine = service.engine
    spool = engine.home / "spool"

    def claims(request: Request) -> DataPlaneClaims:
        return verifier.verify_header(request.headers.get("authorization"))

    # A plain Starlette route (no dependency injection, body model or thread hop): the online read is
    # the hot path. See `online_endpoint`.
    router.add_route(ONLINE_PATH, online or online_endpoint(service, verifier), methods=["POST"])

    @router.post("/historical")
    async def get_historical(
        request: Request,
        features: str = Query(..., description="Comma-separated set:feature references (set@2:f, set:*)."),
        project: str | None = Query(default=None, max_length=63),
        timestamp_column: str = Query(default="event_timestamp", max_length=63),
        entities_format: str = Query(default="parquet", alias="format", pattern="^(parquet|csv)$"),
        entities: str | None = Query(
            default=None, description=f"A {URI_SCHEME}<key> in this agent's store instead of an uploaded file."
        ),
        full_feature_names: bool = False,
        c: DataPlaneClaims = Depends(claims),
    ) -> FileResponse:
        """The entity rows (the request body: Parquet or CSV) joined point-in-time with the features;
        the answer is a Parquet file with every entity row, in order, nulls where nothing is in the TTL."""
        refs = [r.strip() for r in features.split(",") if r.strip()]
        if not refs:
            raise InvalidInput("features must name at least one set:feature", field="features")
        names = {parse_ref(r)[0] for r in refs}
        resolved = {service.project_of(name, project) for name in sorted(names)}
        if len(resolved) > 1:
            raise InvalidInput("all features of one request must come from one project; name it", field="project")
        spool.mkdir(parents=True, exist_ok=True)
        run = uuid.uuid4().hex
        entity_path = spool / f"entities-{run}.{entities_format}"
        out_path = spool / f"features-{run}.parquet"
        try:
            if entities:
                await asyncio.to_thread(_from_store, store, entities, entity_path)
            else:
                await _spool_body(request, entity_path)
            result = await asyncio.to_thread(
                engine.get_historical,
                entity_path,
                refs,
                out_path,
                project=resolved.pop(),
                timestamp_column=timestamp_column,
                full_feature_names=full_feature_names,
            )
        except BaseException:
            with contextlib.suppress(OSError):
                out_path.unlink()
            raise
        finally:
            with contextlib.suppress(OSError):
                entity_path.unlink()
        return FileResponse(
            out_path,
            media_type="application/vnd.apache.parquet",
            filename="features.parquet",
            headers={"X-Rows": str(result.rows)},
            background=BackgroundTask(out_path.unlink, missing_ok=True),
        )

    return router


async def _spool_body(request: Request, path: Path) -> None:
    size = 0
    with open(path, "wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_ENTITY_BYTES:
                raise InvalidInput(f"the entity file is larger than {MAX_ENTITY_BYTES} bytes", field="entities")
            handle.write(chunk)
    if size == 0:
        raise InvalidInput("send the entity rows (Parquet or CSV) as the request body, or name them", field="entities")


def _from_store(store: ObjectStore | None, uri: str, path: Path) -> None:
    if store is None or not uri.startswith(URI_SCHEME):
        raise InvalidInput(f"entities must be a {URI_SCHEME}<key> in this agent's store", field="entities")
    try:
        store.get_to_file(uri[len(URI_SCHEME) :], path)
    except NotFound as exc:
        raise NotFound(f"no object {uri} in this agent's store", field="entities") from exc
