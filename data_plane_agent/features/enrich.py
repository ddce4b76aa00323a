"""The prediction gateway's feature lookup, on Arrow tables: `enrich_table(table, schema, service)`.

For a model whose `schema()` declares `features=[FeatureRef(...)]` and `entity_keys=[...]`, the
gateway calls this after checking the request's inputs and before `predict`: one online read
per feature set for all rows, the values appended as typed columns (null where the key is
unknown or the value is older than the TTL). Same semantics as `mallard.enrich` on pandas.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from data_plane_agent.features.service import FeatureService
from mallard.feature_refs import FeatureRef
from mallard.schema import ModelSchema
from shared.errors import InvalidInput

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def enrich_table(
    table: pa.Table, schema: ModelSchema, service: FeatureService, *, project: str | None = None
) -> pa.Table:
    """`table` plus a column per feature reference of `schema` (unchanged when it declares none).

    InvalidInput names the key column when it is missing or has nulls.
    """
    if not schema.features:
        return table
    for key in schema.entity_keys:
        if key not in table.column_names:
            raise InvalidInput(f"entity key column {key!r} is missing from the request rows", field=key)
        if table.column(key).null_count:
            raise InvalidInput(f"entity key column {key!r} has empty values", field=key)
    columns = {key: table.column(key).to_pylist() for key in schema.entity_keys}
    keys = [{k: columns[k][i] for k in schema.entity_keys} for i in range(table.num_rows)]
    groups: dict[tuple[str, int | None], list[FeatureRef]] = {}
    for ref in schema.features:
        groups.setdefault((ref.feature_set, ref.version), []).append(ref)
    for (name, version), refs in groups.items():
        resolved = service.project_of(name, project)
        fs = service.engine.definition(name, version, project=resolved)
        wanted = list(dict.fromkeys(r.feature for r in refs))
        rows: list[dict[str, Any]] = service.get_online(name, keys, wanted, fs.version, project=resolved)
        for ref in refs:
            arrow_type = ARROW_TYPES.get(fs.feature_types.get(ref.feature, ""))
            values = [row.get(ref.feature) for row in rows]
            table = table.append_column(ref.column, pa.array(values, type=arrow_type))
    return table
