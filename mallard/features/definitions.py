"""Feature definitions: entities, batch feature sets and streaming feature sets.

```python
driver = Entity("driver", keys={"driver_id": "int"})
driver_stats = FeatureSet(
    "driver_stats", entity=driver, source=ParquetSource("data/driver_stats"), timestamp="event_ts",
    features=[Feature("trips_today", "int"), Feature("rating", "float")], ttl=timedelta(days=2),
)
```

A definition is data: `to_dict()` gives the JSON form the control plane stores and the agent
runs (names, types, SQL text, schedules; never feature values), `from_dict()` reads it back,
`fingerprint` hashes it, and `compatible_with(older)` says whether a change can keep the
version (adding features, changing the source or TTL) or needs a new one (removing or retyping
a feature, changing the entity keys or a timestamp column).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from mallard.features.errors import FeatureDefinitionError
from mallard.features.sources import BatchSource, RedisStreamSource
from mallard.features.types import canonical_type

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
AGGREGATIONS = ("count", "sum", "mean", "min", "max", "last")
_CRON = re.compile(r"^(@(hourly|daily|weekly|monthly|yearly|annually)|(\S+\s+){4}\S+)$")
RESERVED_COLUMNS = {"event_timestamp", "created_timestamp", "entity_key"}


def _check_name(value: object, *, what: str, definition: str | None, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise FeatureDefinitionError(
            f"{what} {value!r} must start with a letter or '_' and contain only letters, digits and '_'",
            definition=definition,
            field=field,
        )
    return value


def _fingerprint(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "description"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Entity:
    """What features describe, identified by one or more key columns: `Entity("driver", keys={"driver_id": "int"})`."""

    name: str
    keys: dict[str, str]
    description: str = ""
    kind: ClassVar[str] = "entity"

    def __post_init__(self) -> None:
        _check_name(self.name, what="entity name", definition=None, field="entity.name")
        if not isinstance(self.keys, dict) or not self.keys:
            raise FeatureDefinitionError("needs at least one key column", definition=self.name, field="entity.keys")
        canon = {}
        for key, type_name in self.keys.items():
            _check_name(key, what="key column", definition=self.name, field=f"entity.keys.{key}")
            canon[key] = canonical_type(type_name, definition=self.name, field=f"entity.keys.{key}")
            if canon[key] not in ("int", "str"):
                raise FeatureDefinitionError(
                    f"key column {key!r} must be int or str, not {type_name}",
                    definition=self.name,
                    field=f"entity.keys.{key}",
                )
        object.__setattr__(self, "keys", canon)

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.keys.items())))

    @property
    def key_names(self) -> list[str]:
        """Key column names in declaration order."""
        return list(self.keys)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this entity."""
        return {"kind": self.kind, "name": self.name, "keys": dict(self.keys), "description": self.description}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Entity:
        """Rebuild an entity from `to_dict()` output."""
        return Entity(str(data.get("name")), keys=dict(data.get("keys") or {}), description=data.get("description", ""))

    @property
    def fingerprint(self) -> str:
        """A stable hash of the definition (description excluded)."""
        return _fingerprint(self.to_dict())


@dataclass(frozen=True)
class Feature:
    """One feature column of a feature set: a name and a type (int, float, str, bool, timestamp)."""

    name: str
    type: str
    description: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, what="feature name", definition=None, field="features")
        object.__setattr__(self, "type", canonical_type(self.type, field=f"features.{self.name}.type"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this feature."""
        return {"name": self.name, "type": self.type, "description": self.description}


@dataclass(frozen=True)
class Aggregation:
    """A sliding-window aggregation of one stream column: `Aggregation("amount", "sum", window=timedelta(hours=1))`.

    `function` is one of count, sum, mean, min, max, last; `name` defaults to
    `<column>_<function>_<window>` (e.g. `amount_sum_1h`).
    """

    column: str
    function: str
    window: timedelta
    name: str = ""

    def __post_init__(self) -> None:
        _check_name(self.column, what="aggregated column", definition=None, field="aggregations.column")
        if self.function not in AGGREGATIONS:
            raise FeatureDefinitionError(
                f"unknown aggregation {self.function!r}; use one of {', '.join(AGGREGATIONS)}",
                field="aggregations.function",
            )
        if not isinstance(self.window, timedelta) or self.window.total_seconds() <= 0:
            raise FeatureDefinitionError("window must be a positive timedelta", field="aggregations.window")
        if not self.name:
            object.__setattr__(self, "name", f"{self.column}_{self.function}_{_window_label(self.window)}")
        _check_name(self.name, what="aggregation name", definition=None, field="aggregations.name")

    @property
    def type(self) -> str:
        """The value type the aggregation produces."""
        return "int" if self.function == "count" else "float"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this aggregation."""
        return {
            "column": self.column,
            "function": self.function,
            "window_seconds": self.window.total_seconds(),
            "name": self.name,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Aggregation:
        """Rebuild from `to_dict()` output."""
        return Aggregation(
            str(data.get("column")),
            str(data.get("function")),
            window=timedelta(seconds=float(data.get("window_seconds") or 0)),
            name=str(data.get("name") or ""),
        )


def _window_label(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _check_common(name: str, version: int, timestamp: str, ttl: timedelta | None) -> None:
    _check_name(name, what="feature set name", definition=None, field="name")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FeatureDefinitionError(
            f"version must be a positive integer, got {version!r}", definition=name, field="version"
        )
    _check_name(timestamp, what="timestamp column", definition=name, field="timestamp")
    if ttl is not None and (not isinstance(ttl, timedelta) or ttl.total_seconds() <= 0):
        raise FeatureDefinitionError("ttl must be a positive timedelta or None", definition=name, field="ttl")


def _ttl_seconds(ttl: timedelta | None) -> float | None:
    return None if ttl is None else ttl.total_seconds()


def _ttl(value: Any) -> timedelta | None:
    return None if value is None else timedelta(seconds=float(value))


class _Versioned:
    """What both kinds of feature set share: a fingerprint and the version-compatibility rules."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """A stable hash of the definition (description excluded)."""
        return _fingerprint(self.to_dict())

    def incompatibilities(self, older: FeatureSet | StreamFeatureSet) -> list[str]:
        """Why this definition cannot keep `older`'s version (empty when it can)."""
        return _incompatibilities(self, older)  # type: ignore[arg-type]

    def compatible_with(self, older: FeatureSet | StreamFeatureSet) -> bool:
        """Whether this definition can replace `older` under the same version."""
        return not self.incompatibilities(older)


@dataclass(frozen=True)
class FeatureSet(_Versioned):
    """Features of one entity computed from a batch source; see the module docstring for an example.

    `timestamp` is the event-time column; `created_timestamp` (optional) is when a row became
    known, so historical retrieval never uses a row before it existed. `transform_sql` is a
    DuckDB query over the view `source` that yields the key, timestamp and feature columns.
    `ttl`: a value older than this is not served (None: no limit). `schedule`: "@hourly",
    "@daily" or a cron line for automatic materialization (None: on demand). `online`: whether
    materialization also writes the online store.
    """

    name: str
    entity: Entity
    source: BatchSource
    timestamp: str
    features: list[Feature]
    created_timestamp: str | None = None
    transform_sql: str | None = None
    ttl: timedelta | None = None
    schedule: str | None = None
    online: bool = True
    version: int = 1
    description: str = ""
    kind: ClassVar[str] = "feature_set"

    def __post_init__(self) -> None:
        _check_common(self.name, self.version, self.timestamp, self.ttl)
        if not isinstance(self.entity, Entity):
            raise FeatureDefinitionError("entity must be an Entity", definition=self.name, field="entity")
        if not isinstance(self.source, BatchSource):
            raise FeatureDefinitionError(
                "source must be a ParquetSource, CsvSource or SqlSource", definition=self.name, field="source"
            )
        if self.created_timestamp is not None:
            _check_name(
                self.created_timestamp, what="created timestamp column", definition=self.name, field="created_timestamp"
            )
        if self.transform_sql is not None and not str(self.transform_sql).strip():
            raise FeatureDefinitionError("transform_sql is empty", definition=self.name, field="transform_sql")
        if self.schedule is not None and not _CRON.match(str(self.schedule).strip()):
            raise FeatureDefinitionError(
                f"schedule {self.schedule!r} is neither @hourly/@daily/... nor a 5-field cron line",
                definition=self.name,
                field="schedule",
            )
        _check_columns(
            self.name,
            self.entity,
            self.timestamp,
            self.created_timestamp,
            [(f.name, "features") for f in self.features],
        )
        object.__setattr__(self, "features", list(self.features))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.version))

    @property
    def feature_types(self) -> dict[str, str]:
        """Feature name -> canonical type, in declaration order."""
        return {f.name: f.type for f in self.features}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the control plane stores and the agent runs."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "entity": self.entity.to_dict(),
            "source": self.source.to_dict(),
            "timestamp": self.timestamp,
            "created_timestamp": self.created_timestamp,
            "transform_sql": self.transform_sql,
            "features": [f.to_dict() for f in self.features],
            "ttl_seconds": _ttl_seconds(self.ttl),
            "schedule": self.schedule,
            "online": self.online,
            "description": self.description,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> FeatureSet:
        """Rebuild from `to_dict()` output."""
        name = str(data.get("name"))
        try:
            return FeatureSet(
                name,
                entity=Entity.from_dict(dict(data["entity"])),
                source=BatchSource.from_dict(dict(data["source"])),
                timestamp=str(data["timestamp"]),
                features=[Feature(str(f["name"]), str(f["type"]), f.get("description", "")) for f in data["features"]],
                created_timestamp=data.get("created_timestamp"),
                transform_sql=data.get("transform_sql"),
                ttl=_ttl(data.get("ttl_seconds")),
                schedule=data.get("schedule"),
                online=bool(data.get("online", True)),
                version=int(data.get("version", 1)),
                description=str(data.get("description", "")),
            )
        except (KeyError, TypeError) as exc:
            raise FeatureDefinitionError(f"malformed definition: missing or invalid {exc}", definition=name) from exc


@dataclass(frozen=True)
class StreamFeatureSet(_Versioned):
    """Sliding-window aggregations over events on a Redis Stream, kept current in the online store.

    ```python
    StreamFeatureSet("driver_payments", entity=driver, stream=RedisStreamSource("payments"), timestamp="ts",
                     aggregations=[Aggregation("amount", "sum", window=timedelta(hours=1))])
    ```
    """

    name: str
    entity: Entity
    stream: RedisStreamSource
    timestamp: str
    aggregations: list[Aggregation]
    ttl: timedelta | None = None
    online: bool = True
    version: int = 1
    description: str = ""
    kind: ClassVar[str] = "stream_feature_set"

    def __post_init__(self) -> None:
        _check_common(self.name, self.version, self.timestamp, self.ttl)
        if not isinstance(self.entity, Entity):
            raise FeatureDefinitionError("entity must be an Entity", definition=self.name, field="entity")
        if not isinstance(self.stream, RedisStreamSource):
            raise FeatureDefinitionError("stream must be a RedisStreamSource", definition=self.name, field="stream")
        if not self.aggregations:
            raise FeatureDefinitionError("needs at least one aggregation", definition=self.name, field="aggregations")
        _check_columns(
            self.name, self.entity, self.timestamp, None, [(a.name, "aggregations") for a in self.aggregations]
        )
        object.__setattr__(self, "aggregations", list(self.aggregations))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.version))

    @property
    def features(self) -> list[Feature]:
        """The aggregations as features (count is int, the others float)."""
        return [Feature(a.name, a.type) for a in self.aggregations]

    @property
    def feature_types(self) -> dict[str, str]:
        """Feature name -> canonical type, in declaration order."""
        return {a.name: a.type for a in self.aggregations}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the control plane stores and the agent runs."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "entity": self.entity.to_dict(),
            "stream": self.stream.to_dict(),
            "timestamp": self.timestamp,
            "aggregations": [a.to_dict() for a in self.aggregations],
            "ttl_seconds": _ttl_seconds(self.ttl),
            "online": self.online,
            "description": self.description,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> StreamFeatureSet:
        """Rebuild from `to_dict()` output."""
        name = str(data.get("name"))
        try:
            return StreamFeatureSet(
                name,
                entity=Entity.from_dict(dict(data["entity"])),
                stream=RedisStreamSource.from_dict(dict(data["stream"])),
                timestamp=str(data["timestamp"]),
                aggregations=[Aggregation.from_dict(dict(a)) for a in data["aggregations"]],
                ttl=_ttl(data.get("ttl_seconds")),
                online=bool(data.get("online", True)),
                version=int(data.get("version", 1)),
                description=str(data.get("description", "")),
            )
        except (KeyError, TypeError) as exc:
            raise FeatureDefinitionError(f"malformed definition: missing or invalid {exc}", definition=name) from exc


AnyFeatureSet = FeatureSet | StreamFeatureSet
Definition = Entity | FeatureSet | StreamFeatureSet


def _check_columns(
    name: str, entity: Entity, timestamp: str, created: str | None, outputs: list[tuple[str, str]]
) -> None:
    if not outputs:
        raise FeatureDefinitionError("declares no features", definition=name, field="features")
    seen: dict[str, str] = {}
    for column, role in [(k, "entity.keys") for k in entity.keys] + [(timestamp, "timestamp")]:
        seen.setdefault(column, role)
    if created is not None:
        if created in seen:
            raise FeatureDefinitionError(
                f"created_timestamp {created!r} is also used as {seen[created]}",
                definition=name,
                field="created_timestamp",
            )
        seen[created] = "created_timestamp"
    for column, role in outputs:
        if column in seen:
            raise FeatureDefinitionError(
                f"{role[:-1]} name {column!r} is used twice (also {seen[column]})",
                definition=name,
                field=f"{role}.{column}",
            )
        if column in RESERVED_COLUMNS:
            raise FeatureDefinitionError(
                f"{column!r} is a reserved column name", definition=name, field=f"{role}.{column}"
            )
        seen[column] = role
    if timestamp in entity.keys:
        raise FeatureDefinitionError(
            f"timestamp {timestamp!r} is also an entity key", definition=name, field="timestamp"
        )


def _incompatibilities(new: AnyFeatureSet, old: AnyFeatureSet) -> list[str]:
    problems: list[str] = []
    if new.kind != old.kind:
        problems.append(f"kind changed from {old.kind} to {new.kind}")
    if new.entity.keys != old.entity.keys:
        problems.append(f"entity keys changed from {old.entity.keys} to {new.entity.keys}")
    if new.timestamp != old.timestamp:
        problems.append(f"timestamp column changed from {old.timestamp!r} to {new.timestamp!r}")
    if getattr(new, "created_timestamp", None) != getattr(old, "created_timestamp", None):
        problems.append("created_timestamp column changed")
    new_types = new.feature_types
    for feature, type_name in old.feature_types.items():
        if feature not in new_types:
            problems.append(f"feature {feature!r} was removed")
        elif new_types[feature] != type_name:
            problems.append(f"feature {feature!r} changed type from {type_name} to {new_types[feature]}")
    if isinstance(new, StreamFeatureSet) and isinstance(old, StreamFeatureSet):
        old_aggs = {a.name: a for a in old.aggregations}
        for agg in new.aggregations:
            before = old_aggs.get(agg.name)
            if before is not None and before != agg:
                problems.append(f"aggregation {agg.name!r} changed its column, function or window")
    return problems


def definition_from_dict(data: dict[str, Any]) -> Definition:
    """Rebuild any definition from its `to_dict()` form, dispatching on `kind`."""
    kind = data.get("kind")
    if kind == Entity.kind:
        return Entity.from_dict(data)
    if kind == FeatureSet.kind:
        return FeatureSet.from_dict(data)
    if kind == StreamFeatureSet.kind:
        return StreamFeatureSet.from_dict(data)
    raise FeatureDefinitionError(
        f"unknown definition kind {kind!r} (entity, feature_set, stream_feature_set)",
        definition=data.get("name"),
        field="kind",
    )
