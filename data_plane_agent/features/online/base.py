"""The one online-store interface: the latest feature values per entity key, many keys read at once.

A feature set's values live in an `OnlineTable` namespaced by tenant / project / set / version.
`write_batch` takes an Arrow table with `entity_key` (the key string, see `entity_key`),
`event_ts` and `created_ts` (epoch microseconds; created_ts may be null) and one column per
feature, and keeps a row only when it is newer than what is stored (event time, then created
time), so backfills never overwrite fresher values. `read` returns the values of many keys and
features in one round trip; values older than the table's TTL (relative to `now`) read as None.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class OnlineTable:
    """Where one feature set version's online values live, and their types."""

    tenant: str
    project: str
    name: str
    version: int
    keys: dict[str, str]
    features: dict[str, str]
    ttl: timedelta | None = None

    @property
    def namespace(self) -> str:
        """`tenant/project/set/vN`: the prefix every stored key of this table carries."""
        return f"{self.tenant}/{self.project}/{self.name}/v{self.version}"


def entity_key(table: OnlineTable, key: dict[str, Any]) -> str:
    """The stored key string of one entity: key values in declaration order, joined by \\x1f.

    Raises KeyError naming the first missing key column. Int keys accept int-like strings.
    """
    parts = []
    for column, type_name in table.keys.items():
        value = key[column]
        if type_name == "int":
            if isinstance(value, bool):
                raise ValueError(f"key {column!r} must be an int, got {value!r}")
            value = int(value)
        parts.append(str(value))
    return KEY_SEPARATOR.join(parts)


def entity_key_sql(keys: dict[str, str]) -> str:
    """The DuckDB expression that builds the same key string from key columns."""
    columns = [f'CAST("{k}" AS VARCHAR)' for k in keys]
    if len(columns) == 1:
        return columns[0]
    return "concat_ws(chr(31), " + ", ".join(columns) + ")"


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def expired(table: OnlineTable, event_ts: int | None, now: datetime | None) -> bool:
    """Whether a value stamped `event_ts` (epoch µs) is outside the TTL at `now` (default: the current time)."""
    if event_ts is None:
        return True
    if table.ttl is None:
        return False
    reference = int(now.timestamp() * 1_000_000) if now is not None else now_us()
    return event_ts < reference - int(table.ttl.total_seconds() * 1_000_000)


def expiry_cutoff(table: OnlineTable, now: datetime | None) -> int:
    """The oldest event time (epoch µs) still within the TTL at `now`: `expired(t, ts, now)` is
    `ts is None or ts < expiry_cutoff(t, now)`, computed once for many values."""
    if table.ttl is None:
        return -(2**63)
    reference = int(now.timestamp() * 1_000_000) if now is not None else now_us()
    return reference - int(table.ttl.total_seconds() * 1_000_000)


def decode(type_name: str, raw: Any) -> Any:
    """A stored value back to its Python type (timestamps are stored as epoch microseconds)."""
    if raw is None:
        return None
    if type_name == "int":
        return int(raw)
    if type_name == "float":
        return float(raw)
    if type_name == "bool":
        return raw in (1, True, b"1", "1")
    if type_name == "timestamp":
        return datetime.fromtimestamp(int(raw) / 1_000_000, UTC)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class OnlineStore(ABC):
    """Latest feature values per entity key (SQLite embedded, Redis in production)."""

    @abstractmethod
    def write_batch(self, table: OnlineTable, rows: pa.Table) -> int:
        """Upsert rows (entity_key, event_ts, created_ts, features...); returns the number of rows sent."""

    @abstractmethod
    def read(
        self, table: OnlineTable, keys: Sequence[str], features: Sequence[str], *, now: datetime | None = None
    ) -> list[dict[str, Any] | None]:
        """Values of `features` for each key string, in order, in one round trip; None for an unknown or
        expired key. Each row also carries `event_timestamp` (a UTC datetime)."""

    def read_many(
        self, reads: Sequence[tuple[OnlineTable, Sequence[str], Sequence[str]]], *, now: datetime | None = None
    ) -> list[list[dict[str, Any] | None]]:
        """`read` of several tables (table, key strings, features) at once; stores that can answer them
        in one round trip (one Redis pipeline) override this."""
        return [self.read(table, keys, features, now=now) for table, keys, features in reads]

    @abstractmethod
    def count_keys(self, table: OnlineTable) -> int:
        """How many entity keys the table holds."""

    @abstractmethod
    def drop(self, table: OnlineTable) -> None:
        """Remove every value of the table."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""
