"""`FeatureEngine`: the feature store as the agent (and tests, and the benchmark) call it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_plane_agent.features import pit_index, pit_memory
from data_plane_agent.features.duck import open_duckdb
from data_plane_agent.features.materialize import MaterializationResult, Materializer, ProgressFn, online_table
from data_plane_agent.features.offline import OfflineStore
from data_plane_agent.features.online import OnlineStore, OnlineTable, entity_key
from data_plane_agent.features.pit import MEMORY_ROWS, FeatureRequest, PointInTimeJoin
from data_plane_agent.features.pit_index import PitIndexCache
from data_plane_agent.features.registry import FeatureRegistry
from data_plane_agent.storage import LocalObjectStore, ObjectStore
from mallard.features import (
    AnyFeatureSet,
    Definition,
    Entity,
    FeatureDefinitionError,
    FeatureSet,
    StreamFeatureSet,
    definition_from_dict,
    validate,
)
from shared.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True)
class Freshness:
    """Metadata the agent reports to the control plane for one feature set version (no values)."""

    name: str
    version: int
    last_materialized_at: datetime | None
    watermark: datetime | None
    offline_rows: int
    online_keys: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "last_materialized_at": None
            if self.last_materialized_at is None
            else self.last_materialized_at.isoformat(),
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
            "offline_rows": self.offline_rows,
            "online_keys": self.online_keys,
        }


@dataclass(frozen=True)
class HistoricalResult:
    """Where the training frame was written and how many rows it has (= the entity rows)."""

    path: Path
    rows: int


def parse_ref(ref: str) -> tuple[str, int | None, str]:
    """`set:feature`, `set@2:feature` or `set:*` -> (set, version or None for latest, feature or '*')."""
    name, sep, feature = ref.partition(":")
    if not sep or not name or not feature:
        raise InvalidInput(f"feature reference {ref!r} must look like set:feature (or set@2:feature)", field="features")
    version: int | None = None
    if "@" in name:
        name, _, raw = name.partition("@")
        try:
            version = int(raw.lstrip("v"))
        except ValueError as exc:
            raise InvalidInput(f"feature reference {ref!r}: version {raw!r} is not a number", field="features") from exc
    return name, version, feature


class FeatureEngine:
    """The data-plane feature store of one tenant. See `data_plane_agent.features` for the surface."""

    def __init__(
        self,
        home: Path,
        store: ObjectStore,
        online: OnlineStore,
        tenant_id: str,
        *,
        memory_limit: str = "2GB",
        threads: int | None = None,
        pit_memory_rows: int = MEMORY_ROWS,
    ) -> None:
        self.home = home / "features"
        self.pit_memory_rows = pit_memory_rows
        self.store = store
        self.online = online
        self.tenant_id = tenant_id
        self.memory_limit = memory_limit
        self.threads = threads
        self.registry = FeatureRegistry(self.home / "registry.sqlite")
        self.offline = OfflineStore(store, tenant_id, self.home / "cache")
        self.indexes = PitIndexCache(self.home / "index" / self.offline.tenant)
        self._online_cache: dict[tuple[str, str, int], tuple[Any, tuple[OnlineTable, list[str], dict[str, str]]]] = {}
        self.materializer = Materializer(
            self.offline,
            online,
            self.registry,
            self.home / "work",
            memory_limit=memory_limit,
            threads=threads,
            indexes=self.indexes,
        )

    # -- definitions -------------------------------------------------------------------------

    def apply(
        self, definitions: Iterable[Definition | dict[str, Any]], *, project: str, check_data: bool = True
    ) -> list[dict[str, Any]]:
        """Validate and store definitions (objects or their `to_dict()` JSON). All or nothing.

        Raises InvalidInput (field named) for a bad definition, or when `check_data` and it does not
        match its data; Conflict when a changed definition keeps an applied version but is incompatible.
        Returns name/version/kind/fingerprint/changed per feature set.
        """
        try:
            items = [definition_from_dict(d) if isinstance(d, dict) else d for d in definitions]
            if check_data:
                validate(items)
        except FeatureDefinitionError as exc:
            raise InvalidInput(exc.message, field=exc.field) from exc
        sets = [d for d in items if not isinstance(d, Entity)]
        for fs in sets:
            before = self.registry.find(project, fs.name, fs.version)
            if before is not None and before.fingerprint != fs.fingerprint:
                problems = fs.incompatibilities(before)
                if problems:
                    raise Conflict(
                        f"feature set {fs.name!r} version {fs.version} is already applied and this change is "
                        f"incompatible ({'; '.join(problems)}); bump the version",
                        field="version",
                    )
        out = []
        for fs in sets:
            before = self.registry.find(project, fs.name, fs.version)
            self.registry.put(project, fs)
            out.append(
                {
                    "name": fs.name,
                    "version": fs.version,
                    "kind": fs.kind,
                    "fingerprint": fs.fingerprint,
                    "changed": before is None or before.fingerprint != fs.fingerprint,
                }
            )
        return out

    def definition(self, name: str, version: int | None = None, *, project: str) -> AnyFeatureSet:
        """An applied definition (latest version when None); NotFound otherwise."""
        return self.registry.get(project, name, version)

    def projects(self) -> list[str]:
        """Projects that have applied definitions on this agent."""
        return self.registry.projects()

    def definitions(self, *, project: str) -> list[AnyFeatureSet]:
        """Every applied definition of the project, all versions."""
        return self.registry.list_definitions(project)

    # -- batch -------------------------------------------------------------------------------

    def materialize(
        self,
        name: str,
        version: int | None = None,
        *,
        project: str,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: ProgressFn | None = None,
    ) -> MaterializationResult:
        """Materialize a batch feature set: incremental (watermark -> now) or backfill [start, end)."""
        fs = self.registry.get(project, name, version)
        if not isinstance(fs, FeatureSet):
            raise InvalidInput(
                f"{name!r} is a streaming feature set; it is materialized continuously", field="feature_set"
            )
        result = self.materializer.run(project, fs, start=start, end=end, progress=progress)
        if pit_memory.eligible(fs) and isinstance(self.store, LocalObjectStore):
            # Build the join index now, so the first historical retrieval does not pay for it (from a
            # remote store it is built at that retrieval, which fetches the parts anyway).
            report = progress or (lambda phase, done, total: None)
            report("indexing", 0, None)
            self.indexes.get(
                pit_index.owner(project, fs.name, fs.version),
                self.materializer.files(project, fs),
                next(iter(fs.entity.keys)),
            )
        return result

    def get_historical(
        self,
        entities: str | Path | pa.Table,
        refs: list[str],
        out_path: Path,
        *,
        project: str,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> HistoricalResult:
        """Point-in-time join of entity rows (Parquet/CSV path or Arrow table) with `refs`, written to `out_path`."""
        requests = self._requests(refs, project)
        run_dir = self.home / "work" / f"pit-{uuid.uuid4().hex}"
        con = open_duckdb(run_dir, memory_limit=self.memory_limit, threads=self.threads, keep_order=True)
        try:
            join = PointInTimeJoin(con, memory_rows=self.pit_memory_rows, threads=self.threads, indexes=self.indexes)
            rows = join.run(
                entities, requests, out_path, timestamp_column=timestamp_column, full_feature_names=full_feature_names
            )
        finally:
            con.close()
            shutil.rmtree(run_dir, ignore_errors=True)
        return HistoricalResult(out_path, rows)

    def _requests(self, refs: list[str], project: str) -> list[FeatureRequest]:
        grouped: dict[tuple[str, int], tuple[FeatureSet, list[str]]] = {}
        for ref in refs:
            name, version, feature = parse_ref(ref)
            fs = self.registry.get(project, name, version)
            if not isinstance(fs, FeatureSet):
                raise InvalidInput(f"{name!r} is a streaming feature set; it has no history to join", field="features")
            wanted = list(fs.feature_types) if feature == "*" else [feature]
            for item in wanted:
                if item not in fs.feature_types:
                    raise InvalidInput(f"feature set {name!r} v{fs.version} has no feature {item!r}", field="features")
            entry = grouped.setdefault((fs.name, fs.version), (fs, []))
            entry[1].extend(f for f in wanted if f not in entry[1])
        requests = []
        for fs, features in grouped.values():
            if self.registry.state(project, fs.name, fs.version).last_materialized_at is None:
                raise NotFound(
                    f"feature set {fs.name!r} v{fs.version} has never been materialized, so it has no history; "
                    f"run `mallard features materialize {fs.name}` first",
                    field="features",
                )
            requests.append(
                FeatureRequest(
                    fs, features, self.materializer.files(project, fs), pit_index.owner(project, fs.name, fs.version)
                )
            )
        return requests

    # -- online ------------------------------------------------------------------------------

    def get_online(
        self,
        name: str,
        keys: list[dict[str, Any]],
        features: list[str] | None = None,
        version: int | None = None,
        *,
        project: str,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Current values for many entity keys in one round trip: one dict per key, in order, with the
        key columns, the features (None when unknown or older than the TTL) and `event_timestamp`."""
        fs = self.registry.get(project, name, version)
        ((_, rows),) = self.get_online_many([(fs, features)], keys, project=project, now=now)
        return rows

    def get_online_many(
        self,
        sets: list[tuple[AnyFeatureSet, list[str] | None]],
        keys: list[dict[str, Any]],
        *,
        project: str,
        now: datetime | None = None,
    ) -> list[tuple[list[str], list[dict[str, Any]]]]:
        """`get_online` of several feature sets (definitions, features or None for all) for the same
        keys, read from the online store together (one round trip where the store allows it).
        Returns per set the features read and the rows (as `get_online`)."""
        reads = []
        for fs, features in sets:
            table, _, types = self._online_meta(project, fs)
            wanted = list(features) if features else list(types)
            for feature in wanted:
                if feature not in types:
                    raise InvalidInput(
                        f"feature set {fs.name!r} v{fs.version} has no feature {feature!r}", field="features"
                    )
            strings = []
            for i, key in enumerate(keys):
                try:
                    strings.append(entity_key(table, key))
                except KeyError as exc:
                    raise InvalidInput(f"key {i} lacks the entity key column {exc.args[0]!r}", field="keys") from exc
                except (TypeError, ValueError) as exc:
                    raise InvalidInput(f"key {i}: {exc}", field="keys") from exc
            reads.append((table, strings, wanted))
        answers = self.online.read_many(reads, now=now)
        out = []
        for (fs, _), (_, _, wanted), values in zip(sets, reads, answers, strict=True):
            key_columns = self._online_meta(project, fs)[1]
            empty = dict.fromkeys([*wanted, "event_timestamp"])
            rows = []
            for key, found in zip(keys, values, strict=True):
                row = {k: key[k] for k in key_columns}
                row.update(found if found is not None else empty)
                rows.append(row)
            out.append((wanted, rows))
        return out

    def _online_meta(self, project: str, fs: AnyFeatureSet) -> tuple[OnlineTable, list[str], dict[str, str]]:
        """The online table, key columns and feature types of a definition, computed once per parsed
        definition (the registry hands out the same object until a definition changes)."""
        cache_key = (project, fs.name, fs.version)
        cached = self._online_cache.get(cache_key)
        if cached is not None and cached[0] is fs:
            return cached[1]
        meta = (online_table(self.tenant_id, project, fs), list(fs.entity.keys), dict(fs.feature_types))
        self._online_cache[cache_key] = (fs, meta)
        return meta

    def freshness(self, name: str, version: int | None = None, *, project: str) -> Freshness:
        """Last materialized time, watermark, offline row count and online key count (metadata only)."""
        fs = self.registry.get(project, name, version)
        state = self.registry.state(project, fs.name, fs.version)
        keys = self.online.count_keys(online_table(self.tenant_id, project, fs))
        return Freshness(fs.name, fs.version, state.last_materialized_at, state.watermark, state.offline_rows, keys)

    def stream_aggregator(
        self, name: str, version: int | None = None, *, project: str, redis_url: str | None = None
    ) -> Any:
        """A `StreamAggregator` for a streaming feature set (start it with `.start()`, stop with `.stop()`)."""
        from data_plane_agent.features.streaming import StreamAggregator

        fs = self.registry.get(project, name, version)
        if not isinstance(fs, StreamFeatureSet):
            raise InvalidInput(f"{name!r} is not a streaming feature set", field="feature_set")
        url = fs.stream.redis_url or redis_url
        if not url:
            raise NotFound(
                f"stream feature set {name!r} names no Redis and the agent has none configured", field="redis_url"
            )
        return StreamAggregator(fs, url, self.online, online_table(self.tenant_id, project, fs))

    def close(self) -> None:
        self.registry.close()
