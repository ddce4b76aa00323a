"""Build contexts: uploaded straight to the data plane, content-addressed and checked on arrival."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from data_plane_agent.storage import ObjectStore, context_key, digest_hex
from shared.errors import InvalidInput, MallardError, PermissionDenied
from shared.jwt_tokens import DataPlaneClaims

WRITE_ROLES = frozenset({"admin", "member"})


class DigestMismatch(InvalidInput):
    """The uploaded bytes do not hash to the digest in the URL."""

    code = "digest_mismatch"


class ContextTooLarge(MallardError):
    """The context is larger than this agent accepts (max_context_bytes)."""

    http_status = 413
    code = "context_too_large"


def contexts_router(
    *, store: ObjectStore, max_bytes: int, claims: Callable[..., DataPlaneClaims], spool_dir: Path
) -> APIRouter:
    router = APIRouter(prefix="/v1/contexts", tags=["contexts"])

    def too_large() -> ContextTooLarge:
        return ContextTooLarge(
            f"the context is larger than this agent's limit of {max_bytes} bytes ({max_bytes / 2**20:.0f} MiB); "
            "leave data and large files out with .mallardignore, or raise MALLARD_AGENT_MAX_CONTEXT_BYTES",
            field="body",
        )

    @router.put("/{digest}", status_code=201)
    async def put_context(
        digest: str, request: Request, response: Response, c: DataPlaneClaims = Depends(claims)
    ) -> dict[str, Any]:
        """Upload a context (raw tar.gz body). 201 when stored, 200 when it already was."""
        if c.role not in WRITE_ROLES:
            raise PermissionDenied(f"role {c.role!r} cannot upload build contexts")
        expected = digest_hex(digest)
        key = context_key(digest)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise too_large()
        spool_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix="context-", suffix=".tar.gz", dir=spool_dir)
        tmp = Path(tmp_name)
        try:
            sha, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as spool:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large()
                    sha.update(chunk)
                    spool.write(chunk)
            if sha.hexdigest() != expected:
                raise DigestMismatch(
                    f"context digest mismatch: expected {digest}, got sha256:{sha.hexdigest()} "
                    f"({size} bytes arrived); upload the archive again",
                    field="digest",
                )
            if await run_in_threadpool(store.exists, key):
                response.status_code = 200
            else:
                await run_in_threadpool(store.put_file, key, tmp)
            return {"digest": digest, "size": size, "uri": store.uri(key)}
        finally:
            tmp.unlink(missing_ok=True)

    @router.head("/{digest}")
    def head_context(digest: str, c: DataPlaneClaims = Depends(claims)) -> Response:
        """200 if the context is in the store, 404 if not."""
        key = context_key(digest)
        if not store.exists(key):
            return Response(status_code=404)
        return Response(status_code=200, headers={"X-Context-Size": str(store.size(key))})

    return router
