"""The object store as a pyarrow filesystem, for readers that scan Parquet in place (DuckDB, datasets).

Only reads and listings go through here; writes keep going through `ObjectStore.put_*`, which is
atomic on both backends.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from data_plane_agent.storage.base import ObjectStore, check_key
from data_plane_agent.storage.local import LocalObjectStore


def _s3_filesystem(endpoint_url: str | None, region: str | None) -> pafs.S3FileSystem:
    kwargs: dict[str, object] = {}
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if region:
        kwargs["region"] = region
    # Credentials: the usual AWS_* environment variables, profiles or instance roles, as for boto3.
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def s3_settings(store: ObjectStore | None) -> tuple[str | None, str | None]:
    """(endpoint URL, region) of an S3 store, so s3:// locations reach the same server; else (None, None)."""
    from data_plane_agent.storage.s3 import S3ObjectStore

    if isinstance(store, S3ObjectStore):
        return store.client.meta.endpoint_url, store.client.meta.region_name
    return None, None


def store_filesystem(store: ObjectStore, prefix: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) under which the store's keys starting with `prefix` live."""
    check_key(prefix)
    if isinstance(store, LocalObjectStore):
        return pafs.LocalFileSystem(), str(store.root.resolve() / prefix)
    from data_plane_agent.storage.s3 import S3ObjectStore

    if isinstance(store, S3ObjectStore):
        endpoint, region = s3_settings(store)
        base = "/".join(part for part in (store.bucket, store.prefix, prefix) if part)
        return _s3_filesystem(endpoint, region), base
    raise TypeError(f"no pyarrow filesystem for a {type(store).__name__}")


def location_filesystem(location: str, *, store: ObjectStore | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) of a user-given location: a local path, file:///path or s3://bucket/prefix.

    S3 locations use the agent store's endpoint and region when the store is on S3 too.
    """
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        if len(parsed.netloc) < 3:
            raise ValueError(f"{location!r} needs a bucket name of at least 3 characters")
        endpoint, region = s3_settings(store)
        return _s3_filesystem(endpoint, region), f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme else location
        if not path:
            raise ValueError(f"{location!r} names no file or directory")
        return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())
    raise ValueError(f"{location!r}: unsupported scheme {parsed.scheme!r} (use a path, file:// or s3://)")
