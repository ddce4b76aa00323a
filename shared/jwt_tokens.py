"""Short-lived data-plane JWTs: signed by the control plane (EdDSA), verified offline by agents."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from shared.errors import PermissionDenied, Unauthenticated

ISSUER = "mallard-control-plane"
AUDIENCE = "mallard-data-plane"
ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class DataPlaneClaims:
    """What a verified data-plane token says about its bearer."""

    subject: str
    tenant_id: str
    role: str
    expires_at: int


def sign(private_key_pem: bytes, *, subject: str, tenant_id: str, role: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "tenant": tenant_id,
        "role": role,
        "iat": now,
        "nbf": now - 30,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)


def verify(token: str, public_key_pem: bytes, *, tenant_id: str, leeway: int = 30) -> DataPlaneClaims:
    """Verify signature, issuer, audience and expiry, and that the token is for this tenant."""
    try:
        claims = jwt.decode(
            token,
            public_key_pem,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("data-plane token has expired; request a new one from the control plane") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid data-plane token: {exc}") from exc
    if claims.get("tenant") != tenant_id:
        raise PermissionDenied("data-plane token belongs to another tenant")
    return DataPlaneClaims(
        subject=str(claims["sub"]),
        tenant_id=str(claims["tenant"]),
        role=str(claims.get("role", "viewer")),
        expires_at=int(claims["exp"]),
    )
