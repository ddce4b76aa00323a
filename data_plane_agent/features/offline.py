"""The offline store: a feature set version's canonical rows as Parquet in the object store, one
directory per event date.

`features/<tenant>/<project>/<set>/v<version>/date=YYYY-MM-DD/part-<id>.parquet`. Files hold the
entity keys, `event_timestamp`, `created_timestamp` (when defined) and the features, typed.
Which parts make up a partition is recorded in the agent's registry (the manifest), not inferred
from a listing: a run uploads new parts, commits the manifest in one transaction, then deletes
the parts it replaced. Readers use the manifest, so they see the old or the new partition, never
both; a run interrupted before its commit leaves only unreferenced parts, removed by the next run.
DuckDB reads parts where they are on a local store; from S3 they are first synchronised into a
local cache directory (part names are unique, so only new parts are fetched).
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from data_plane_agent.storage import LocalObjectStore, ObjectStore
from shared.errors import InvalidInput

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_PART = re.compile(r"^part-[0-9a-f-]{32,36}\.parquet$")


def _check(value: str, field: str) -> str:
    if not _SAFE.match(value or ""):
        raise InvalidInput(f"{field} {value!r} may only contain letters, digits, '_', '.', '-'", field=field)
    return value


class OfflineStore:
    """Partitioned Parquet files of every feature set version of one tenant."""

    def __init__(self, store: ObjectStore, tenant: str, cache_dir: Path) -> None:
        self.store = store
        self.tenant = _check(tenant, "tenant_id")
        self.cache_dir = cache_dir

    def prefix(self, project: str, name: str, version: int) -> str:
        return f"features/{self.tenant}/{_check(project, 'project')}/{_check(name, 'feature_set')}/v{int(version)}/"

    def stored_keys(self, project: str, name: str, version: int) -> list[str]:
        """Every part key under the feature set version's prefix, referenced by the manifest or not."""
        prefix = self.prefix(project, name, version)
        if isinstance(self.store, LocalObjectStore):
            # Walk only this feature set's directory, not the whole store.
            root = self.store.path(prefix.rstrip("/"))
            if not root.is_dir():
                return []
            return sorted(
                p.relative_to(self.store.root).as_posix() for p in root.rglob("*.parquet") if not p.name.startswith(".")
            )
        return [k for k in self.store.list(prefix) if k.endswith(".parquet")]

    def upload(self, project: str, name: str, version: int, day: str, files: list[Path]) -> list[str]:
        """Store `files` as new parts of partition `day` (not yet referenced); returns their keys."""
        prefix = self.prefix(project, name, version)
        keys = []
        for path in files:
            # A staged part's name is already unique (part-<uuid>): keeping it lets a run know the
            # order of its parts in the manifest before they are uploaded.
            name = path.name if _PART.match(path.name) else f"part-{uuid.uuid4().hex}.parquet"
            key = f"{prefix}date={day}/{name}"
            if isinstance(self.store, LocalObjectStore):
                # Same filesystem as the staging directory in practice: a rename, not a copy.
                target = self.store.path(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), target)
            else:
                self.store.put_file(key, path)
            keys.append(key)
        return keys

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.store.delete(key)

    def local_files(self, project: str, name: str, version: int, keys: list[str]) -> list[str]:
        """Paths DuckDB can read for the given part keys (fetched into the cache from a remote store)."""
        if isinstance(self.store, LocalObjectStore):
            return [str(self.store.path(key)) for key in sorted(keys)]
        prefix = self.prefix(project, name, version)
        root = self.cache_dir / prefix
        paths = []
        for key in sorted(keys):
            path = root / key[len(prefix) :]
            if not path.exists():
                tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
                self.store.get_to_file(key, tmp)
                tmp.replace(path)
            paths.append(str(path))
        return paths

    def prune_cache(self, project: str, name: str, version: int, keys: list[str]) -> None:
        """Drop cached copies of parts that are no longer referenced."""
        if isinstance(self.store, LocalObjectStore):
            return
        prefix = self.prefix(project, name, version)
        root = self.cache_dir / prefix
        wanted = {root / key[len(prefix) :] for key in keys}
        if root.exists():
            for path in root.rglob("*.parquet"):
                if path not in wanted:
                    path.unlink(missing_ok=True)
