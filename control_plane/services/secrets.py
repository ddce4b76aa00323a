"""Bearer secrets (API keys, join tokens): `<kind>_<row id>_<secret>`, only SHA-256 stored.

The secrets are 256 random bits, so a fast hash is enough; a slow KDF would only cost
latency on every request without adding resistance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from shared.errors import Unauthenticated


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return _secrets.token_urlsafe(32)


def format_token(kind: str, row_id: str, secret: str) -> str:
    return f"{kind}.{row_id}.{secret}"


def parse_token(token: str, kind: str, what: str) -> tuple[str, str]:
    """Split a presented token into (row id, secret) or raise Unauthenticated naming `what`."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != kind or not parts[1] or not parts[2]:
        raise Unauthenticated(f"{what} is malformed; expected '{kind}.<id>.<secret>'")
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
