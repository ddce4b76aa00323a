"""Offline verification of data-plane JWTs for the prediction paths (REST and gRPC).

Same checks as every other data-plane route (`shared.jwt_tokens.verify`: signature, issuer,
audience, expiry, this agent's tenant), with the verification key read once and a verified
token remembered until it expires, so a hot prediction path does not pay a signature check
and a file read per request.
"""

from __future__ import annotations

import time
from pathlib import Path

from shared.errors import Unauthenticated, Unavailable
from shared.jwt_tokens import DataPlaneClaims, verify

MAX_CACHED = 4096


class TokenVerifier:
    """`verify_header("Bearer <jwt>")` -> claims, or Unauthenticated / PermissionDenied."""

    def __init__(self, public_key: Path, *, tenant_id: str) -> None:
        self.public_key = public_key
        self.tenant_id = tenant_id
        self._key: bytes | None = None
        self._key_mtime = 0.0
        self._cache: dict[str, DataPlaneClaims] = {}

    def _key_bytes(self) -> bytes:
        try:
            mtime = self.public_key.stat().st_mtime
        except FileNotFoundError as exc:
            raise Unavailable("this agent has no token verification key yet; it gets one at enrollment") from exc
        if self._key is None or mtime != self._key_mtime:
            self._key, self._key_mtime = self.public_key.read_bytes(), mtime
            self._cache.clear()
        return self._key

    def verify_token(self, token: str) -> DataPlaneClaims:
        key = self._key_bytes()
        claims = self._cache.get(token)
        if claims is not None and claims.expires_at > time.time():
            return claims
        claims = verify(token, key, tenant_id=self.tenant_id)
        if len(self._cache) >= MAX_CACHED:
            now = time.time()
            self._cache = {t: c for t, c in self._cache.items() if c.expires_at > now}
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
        self._cache[token] = claims
        return claims

    def verify_header(self, header: str | None) -> DataPlaneClaims:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer token; get one with POST /api/v1/data-plane/token")
        return self.verify_token(token.strip())
