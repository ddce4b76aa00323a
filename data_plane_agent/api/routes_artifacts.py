"""Artifacts: immutable, content-addressed tar.gz files, downloaded from the data plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from data_plane_agent.storage import ObjectMissing, ObjectStore, artifact_key
from shared.errors import NotFound
from shared.jwt_tokens import DataPlaneClaims

CHUNK = 1024 * 1024


def artifacts_router(*, store: ObjectStore, claims: Callable[..., DataPlaneClaims]) -> APIRouter:
    router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])

    @router.get("/{digest}")
    def get_artifact(digest: str, c: DataPlaneClaims = Depends(claims)) -> StreamingResponse:
        """The artifact archive, streamed."""
        key = artifact_key(digest)
        try:
            size = store.size(key)
            handle = store.open_read(key)
        except ObjectMissing as exc:
            raise NotFound(f"artifact {digest} is not in this agent's store", field="digest") from exc

        def body() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return StreamingResponse(
            body(),
            media_type="application/gzip",
            headers={"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{digest[7:]}.tar.gz"'},
        )

    return router
