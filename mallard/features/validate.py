"""Local checks of definitions against their data, with DuckDB, before anything is registered.

`validate(definitions)` raises `FeatureDefinitionError` naming the definition and field for:
duplicate names, a source that cannot be read, SQL that does not run, a missing key / timestamp
/ feature column, and a column whose type does not hold the declared type. `feature_rows_sql`
is the one query that turns a feature set's source into its canonical rows (entity keys,
`event_timestamp`, optional `created_timestamp`, typed features); validation, materialization
and retrieval all use it, so training and serving read the same definition the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mallard.features.definitions import Definition, Entity, FeatureSet, StreamFeatureSet
from mallard.features.errors import FeatureDefinitionError
from mallard.features.types import DUCKDB_TYPES, accepts, is_timestamp

if TYPE_CHECKING:
    import duckdb

SOURCE_VIEW = "source"
TRANSFORMED_VIEW = "__mallard_transformed"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection with UTC as the session time zone (naive timestamps are UTC)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def register_transformed(con: duckdb.DuckDBPyConnection, fs: FeatureSet) -> dict[str, str]:
    """Create the views `source` and the transformed rows in `con`; returns their columns and DuckDB types.

    Raises FeatureDefinitionError naming the field when the source cannot be read or the SQL fails.
    """
    import duckdb

    source_field = "source.sql" if fs.source.type == "sql" else "source.path"
    try:
        fs.source.register(con, SOURCE_VIEW)
        con.execute(f"SELECT * FROM {SOURCE_VIEW} LIMIT 0")
    except FeatureDefinitionError as exc:
        raise FeatureDefinitionError(exc.message, definition=fs.name, field=exc.field) from exc
    except (duckdb.Error, OSError) as exc:
        raise FeatureDefinitionError(
            f"cannot read the source: {_first_line(exc)}", definition=fs.name, field=source_field
        ) from exc
    body = fs.transform_sql if fs.transform_sql else f"SELECT * FROM {SOURCE_VIEW}"
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {TRANSFORMED_VIEW} AS {body}")
        described = con.execute(f"DESCRIBE SELECT * FROM {TRANSFORMED_VIEW}").fetchall()
    except duckdb.Error as exc:
        raise FeatureDefinitionError(
            f"transform_sql does not run: {_first_line(exc)}", definition=fs.name, field="transform_sql"
        ) from exc
    return {str(row[0]): str(row[1]) for row in described}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_columns(fs: FeatureSet, columns: dict[str, str]) -> None:
    """Every key, timestamp and feature column exists in `columns` with a type that holds the declared one."""
    where = "the transform_sql result" if fs.transform_sql else "the source"
    available = ", ".join(sorted(columns)) or "none"

    def need(column: str, field: str, what: str) -> str:
        if column not in columns:
            raise FeatureDefinitionError(
                f"{what} column {column!r} is not in {where} (columns: {available})", definition=fs.name, field=field
            )
        return columns[column]

    for key, type_name in fs.entity.keys.items():
        actual = need(key, f"entity.keys.{key}", "entity key")
        if not accepts(type_name, actual):
            raise FeatureDefinitionError(
                f"entity key {key!r} is declared {type_name} but the column is {actual}",
                definition=fs.name,
                field=f"entity.keys.{key}",
            )
    for column, field in ((fs.timestamp, "timestamp"), (fs.created_timestamp, "created_timestamp")):
        if column is None:
            continue
        actual = need(column, field, field.replace("_", " "))
        if not is_timestamp(actual):
            raise FeatureDefinitionError(
                f"{field} column {column!r} must be a TIMESTAMP or DATE, but it is {actual}",
                definition=fs.name,
                field=field,
            )
    for feature in fs.features:
        actual = need(feature.name, f"features.{feature.name}", "feature")
        if not accepts(feature.type, actual):
            raise FeatureDefinitionError(
                f"feature {feature.name!r} is declared {feature.type} but the column is {actual}",
                definition=fs.name,
                field=f"features.{feature.name}.type",
            )


def feature_rows_sql(fs: FeatureSet, relation: str = TRANSFORMED_VIEW) -> str:
    """SELECT of the canonical rows over `relation` (keys, event_timestamp, created_timestamp?, features)."""
    parts = [f"CAST({_ident(k)} AS {DUCKDB_TYPES[t]}) AS {_ident(k)}" for k, t in fs.entity.keys.items()]
    parts.append(f"CAST({_ident(fs.timestamp)} AS TIMESTAMPTZ) AS event_timestamp")
    if fs.created_timestamp:
        parts.append(f"CAST({_ident(fs.created_timestamp)} AS TIMESTAMPTZ) AS created_timestamp")
    parts += [f"CAST({_ident(f.name)} AS {DUCKDB_TYPES[f.type]}) AS {_ident(f.name)}" for f in fs.features]
    not_null = " AND ".join(f"{_ident(c)} IS NOT NULL" for c in [fs.timestamp, *fs.entity.keys])
    return f"SELECT {', '.join(parts)} FROM {relation} WHERE {not_null}"


def _check_duplicates(definitions: list[Definition]) -> None:
    entities: dict[str, Entity] = {}
    sets: dict[tuple[str, int], FeatureSet | StreamFeatureSet] = {}
    for definition in definitions:
        if isinstance(definition, Entity):
            before = entities.setdefault(definition.name, definition)
            if before.keys != definition.keys:
                raise FeatureDefinitionError(
                    "two entities share this name with different keys", definition=definition.name, field="name"
                )
            continue
        for entity in [definition.entity]:
            before = entities.setdefault(entity.name, entity)
            if before.keys != entity.keys:
                raise FeatureDefinitionError(
                    f"entity {entity.name!r} is defined twice with different keys",
                    definition=definition.name,
                    field="entity",
                )
        key = (definition.name, definition.version)
        other = sets.get(key)
        if other is not None and other.fingerprint != definition.fingerprint:
            raise FeatureDefinitionError(
                f"two feature sets are named {definition.name!r} (version {definition.version}); names must be unique",
                definition=definition.name,
                field="name",
            )
        sets[key] = definition


def validate(definitions: Iterable[Definition]) -> None:
    """Check definitions against each other and their data; FeatureDefinitionError on the first problem."""
    items = list(definitions)
    _check_duplicates(items)
    for definition in items:
        if not isinstance(definition, FeatureSet):
            continue
        con = connect()
        try:
            check_columns(definition, register_transformed(con, definition))
            _check_rows(con, definition)
        finally:
            con.close()


def _check_rows(con: duckdb.DuckDBPyConnection, fs: FeatureSet) -> None:
    """Run the canonical query over a sample so cast failures surface now, not at materialization."""
    import duckdb

    try:
        con.execute(f"SELECT count(*) FROM ({feature_rows_sql(fs)} LIMIT 1000)").fetchall()
    except duckdb.Error as exc:
        raise FeatureDefinitionError(
            f"rows do not convert to the declared types: {_first_line(exc)}", definition=fs.name
        ) from exc


__all__ = ["check_columns", "connect", "feature_rows_sql", "register_transformed", "validate"]
