"""Where things live in the store, and the digests that name them."""

from __future__ import annotations

import re

from shared.errors import InvalidInput

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_BUILD_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def digest_hex(digest: str, *, field: str = "digest") -> str:
    """The hex part of "sha256:<64 lowercase hex>", or InvalidInput naming the field."""
    match = _DIGEST.match(digest or "")
    if match is None:
        raise InvalidInput(f'{field} must look like "sha256:<64 lowercase hex digits>", got {digest!r}', field=field)
    return match.group(1)


def check_build_id(build_id: str) -> str:
    if not _BUILD_ID.match(build_id or ""):
        raise InvalidInput(f"invalid build id {build_id!r}", field="build_id")
    return build_id


def context_key(digest: str) -> str:
    return f"contexts/sha256/{digest_hex(digest)}.tar.gz"


def artifact_key(digest: str) -> str:
    return f"artifacts/sha256/{digest_hex(digest)}.tar.gz"


def build_log_key(build_id: str) -> str:
    return f"logs/builds/{check_build_id(build_id)}.log"
