"""Enrich a frame of request rows with online feature values: the serving integration.

`enrich(frame, refs, lookup, entity_keys=[...])` groups the references by feature set, reads
every row's key once per set in ONE online call (`lookup.get_online`), and returns a copy of the
frame with one column per reference (None where the key is unknown or the value is older than
the TTL). `lookup` is anything with `get_online(feature_set, keys, features, version)`: a
`mallard.FeatureStore` (over the data-plane REST API) or, inside the agent, the feature engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mallard.feature_refs import FeatureRef
from mallard.schema import SchemaError

if TYPE_CHECKING:
    import pandas as pd


class OnlineLookup(Protocol):
    """What `enrich` needs: many keys x features of one feature set in one call."""

    def get_online(
        self,
        feature_set: str,
        keys: list[dict[str, Any]],
        features: list[str] | None = None,
        version: int | None = None,
    ) -> list[dict[str, Any]]: ...


_NULLABLE = {"int": "Int64", "float": "Float64", "bool": "boolean", "str": "string"}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python values (JSON and key encoding need them)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def enrich(
    frame: pd.DataFrame,
    refs: Sequence[FeatureRef | str],
    lookup: OnlineLookup,
    *,
    entity_keys: Sequence[str],
) -> pd.DataFrame:
    """A copy of `frame` with a column per feature reference, read online by the `entity_keys` columns.

    Raises SchemaError naming the column when a key column is missing or has empty values, or a
    feature column would overwrite an existing one.
    """
    import pandas as pd

    parsed = [r if isinstance(r, FeatureRef) else FeatureRef(r) for r in refs]
    out = frame.copy()
    if not parsed:
        return out
    for key in entity_keys:
        if key not in frame.columns:
            raise SchemaError(f"entity key column {key!r} is missing from the request rows", field=key)
        if bool(frame[key].isna().any()):
            raise SchemaError(f"entity key column {key!r} has empty values", field=key)
    for ref in parsed:
        if ref.column in frame.columns:
            raise SchemaError(
                f"feature {ref.ref} would overwrite input column {ref.column!r}; give it an alias", field=ref.column
            )
    keys = [
        {k: _plain(v) for k, v in zip(entity_keys, row, strict=True)}
        for row in frame[list(entity_keys)].itertuples(index=False, name=None)
    ]
    groups: dict[tuple[str, int | None], list[FeatureRef]] = {}
    for ref in parsed:
        groups.setdefault((ref.feature_set, ref.version), []).append(ref)
    for (feature_set, version), members in groups.items():
        features = list(dict.fromkeys(r.feature for r in members))
        rows = lookup.get_online(feature_set, keys, features, version)
        if len(rows) != len(keys):
            raise RuntimeError(f"the online store answered {len(rows)} rows for {len(keys)} keys of {feature_set}")
        for ref in members:
            values = [row.get(ref.feature) for row in rows]
            # Typed refs keep their type with gaps (Int64, not float); untyped ones are what pandas infers.
            out[ref.column] = pd.array(values, dtype=_NULLABLE.get(ref.type or "")) if ref.type else values
    return out
