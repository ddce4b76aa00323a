"""The offline store: a feature set version's canonical rows as Parquet in the object store, one
directory per event date.

`features/<tenant>/<project>/<set>/v<version>/date=YYYY-MM-DD/part-<id>.parquet`. Files hold the
entity keys, `event_timestamp`, `created_timestamp` (when defined) and the features, typed. A
partition is replaced as a whole (new part written, then the old parts deleted), so re-running a
range never duplicates rows. DuckDB reads the files where they are on a local store; from S3 they
are first synchronised into a local cache directory (only changed files are fetched).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections import defaultdict
from pathlib import Path

from data_plane_agent.storage import LocalObjectStore, ObjectStore
from shared.errors import InvalidInput

_PART = re.compile(r"date=(\d{4}-\d{2}-\d{2})/part-[0-9a-f]+\.parquet$")
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


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

    def partitions(self, project: str, name: str, version: int) -> dict[str, list[str]]:
        """Event date (YYYY-MM-DD) -> the part keys stored for it."""
        found: dict[str, list[str]] = defaultdict(list)
        prefix = self.prefix(project, name, version)
        for key in self._list(prefix):
            match = _PART.search(key[len(prefix) :])
            if match:
                found[match.group(1)].append(key)
        return dict(found)

    def _list(self, prefix: str) -> list[str]:
        if isinstance(self.store, LocalObjectStore):
            # Walk only this feature set's directory, not the whole store.
            root = self.store.path(prefix.rstrip("/"))
            if not root.is_dir():
                return []
            return sorted(
                p.relative_to(self.store.root).as_posix() for p in root.rglob("*.parquet") if not p.name.startswith(".")
            )
        return list(self.store.list(prefix))

    def replace_partition(
        self, project: str, name: str, version: int, day: str, files: list[Path], old: list[str] | None = None
    ) -> None:
        """Make `files` the content of partition `day`: upload them, then delete the parts they replace
        (`old`, the partition's keys when the run started; listed again when None)."""
        prefix = self.prefix(project, name, version)
        if old is None:
            old = self.partitions(project, name, version).get(day, [])
        for path in files:
            key = f"{prefix}date={day}/part-{uuid.uuid4().hex}.parquet"
            if isinstance(self.store, LocalObjectStore):
                # Same filesystem as the staging directory in practice: a rename, not a copy.
                target = self.store.path(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), target)
            else:
                self.store.put_file(key, path)
        for key in old:
            self.store.delete(key)

    def local_files(
        self, project: str, name: str, version: int, partitions: dict[str, list[str]] | None = None
    ) -> list[str]:
        """Paths DuckDB can read for every part of this feature set version (empty when none)."""
        listed = self.partitions(project, name, version) if partitions is None else partitions
        parts = [key for keys in listed.values() for key in keys]
        if isinstance(self.store, LocalObjectStore):
            return [str(self.store.path(key)) for key in sorted(parts)]
        root = self.cache_dir / self.prefix(project, name, version)
        wanted = {root / key[len(self.prefix(project, name, version)) :]: key for key in parts}
        for path, key in wanted.items():
            # Part names are unique per write, so a cached file of the same name is the same content.
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                self.store.get_to_file(key, tmp)
                tmp.replace(path)
        if partitions is None and root.exists():
            for stale in root.rglob("*.parquet"):
                if stale not in wanted:
                    stale.unlink()
        return sorted(str(p) for p in wanted)
