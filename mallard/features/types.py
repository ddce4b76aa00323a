"""Feature and entity-key types: the names users write and the DuckDB/Arrow types they map to."""

from __future__ import annotations

from mallard.features.errors import FeatureDefinitionError

# Canonical name -> DuckDB type used in the offline store, the online store and retrieval results.
DUCKDB_TYPES: dict[str, str] = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "str": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}
ALIASES: dict[str, str] = {
    "int64": "int",
    "int32": "int",
    "integer": "int",
    "float64": "float",
    "float32": "float",
    "double": "float",
    "string": "str",
    "boolean": "bool",
    "datetime": "timestamp",
}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_FLOATS = {"FLOAT", "DOUBLE", "REAL"}


def canonical_type(name: str, *, definition: str | None = None, field: str | None = None) -> str:
    """The canonical type name for `name` (e.g. "int64" -> "int"), or FeatureDefinitionError."""
    if not isinstance(name, str):
        raise FeatureDefinitionError(f"type must be a string, got {name!r}", definition=definition, field=field)
    lowered = name.strip().lower()
    lowered = ALIASES.get(lowered, lowered)
    if lowered not in DUCKDB_TYPES:
        raise FeatureDefinitionError(
            f"unknown type {name!r}; use one of {', '.join(sorted(DUCKDB_TYPES))}", definition=definition, field=field
        )
    return lowered


def accepts(canonical: str, duckdb_type: str) -> bool:
    """Whether a column of DuckDB type `duckdb_type` can hold values of the canonical type without loss."""
    column = duckdb_type.upper()
    base = column.split("(")[0].strip()
    if canonical == "int":
        return base in _INTEGERS
    if canonical == "float":
        return base in _FLOATS or base in _INTEGERS or base == "DECIMAL"
    if canonical == "str":
        return base == "VARCHAR"
    if canonical == "bool":
        return base == "BOOLEAN"
    if canonical == "timestamp":
        return base.startswith("TIMESTAMP") or base == "DATE"
    return False


def is_timestamp(duckdb_type: str) -> bool:
    """Whether a DuckDB column type can serve as an event or created timestamp."""
    return accepts("timestamp", duckdb_type)
