"""Object store: a local directory (embedded default) or S3 / any S3-compatible server.

`open_store(settings)` picks the backend from `store_url`: `file:///path` (or a plain path)
or `s3://bucket/optional/prefix` (with `s3_endpoint_url` / `s3_region`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from data_plane_agent.storage.base import URI_SCHEME, ObjectMissing, ObjectStore, StoredObject, file_sha256
from data_plane_agent.storage.layout import artifact_key, build_log_key, context_key, digest_hex
from data_plane_agent.storage.local import LocalObjectStore


def open_store(store_url: str, *, default_root: Path, endpoint_url: str = "", region: str = "") -> ObjectStore:
    """The store `store_url` names; an empty URL means a directory at `default_root`."""
    if not store_url:
        return LocalObjectStore(default_root)
    parsed = urlparse(store_url)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme else store_url
        if not path:
            raise ValueError(f"store_url {store_url!r} names no directory; use file:///absolute/path")
        return LocalObjectStore(Path(path))
    if parsed.scheme == "s3":
        if len(parsed.netloc) < 3:
            raise ValueError(f"store_url {store_url!r} needs a bucket name of at least 3 characters")
        from data_plane_agent.storage.s3 import S3ObjectStore

        return S3ObjectStore(parsed.netloc, parsed.path, endpoint_url=endpoint_url or None, region=region or None)
    raise ValueError(f"store_url {store_url!r}: unsupported scheme {parsed.scheme!r} (use file:// or s3://)")


__all__ = [
    "URI_SCHEME",
    "LocalObjectStore",
    "ObjectMissing",
    "ObjectStore",
    "StoredObject",
    "artifact_key",
    "build_log_key",
    "context_key",
    "digest_hex",
    "file_sha256",
    "open_store",
]
