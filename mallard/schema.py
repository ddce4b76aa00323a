"""Typed inputs and outputs of a model.

```python
mallard.ModelSchema(
    inputs=[mallard.Field("age", "int"), mallard.Field("plan", "str")],
    outputs=[mallard.Field("churn_probability", "float")],
)
```

A schema validates the frames a model receives and returns (`validate`, `validate_outputs`) and
generates example inputs (`example`), which the build's check and `mallard models predict --example`
use. Field types are names in `FIELD_TYPES`; later kinds of input (feature-store features) add
entries there rather than new classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mallard.feature_refs import FeatureRef

if TYPE_CHECKING:
    import pandas as pd

    from mallard.enrichment import OnlineLookup


class SchemaError(ValueError):
    """A frame does not match the schema, or the schema itself is malformed; `field` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FieldType:
    """How one field type is checked and exemplified. `accepts` gets a pandas Series."""

    name: str
    accepts: Callable[[Any], bool]
    example: Callable[[str, int], Any]  # (field name, row number) -> value
    description: str


def _is_int(series: Any) -> bool:
    from pandas.api import types

    return bool(types.is_integer_dtype(series.dtype)) and not types.is_bool_dtype(series.dtype)


def _is_float(series: Any) -> bool:
    from pandas.api import types

    # Integer columns are valid floats: a frame built from literals like [1, 2] should not be refused.
    return bool(types.is_numeric_dtype(series.dtype)) and not types.is_bool_dtype(series.dtype)


def _is_bool(series: Any) -> bool:
    from pandas.api import types

    return bool(types.is_bool_dtype(series.dtype))


def _is_str(series: Any) -> bool:
    from pandas.api import types

    if types.is_string_dtype(series.dtype) and not types.is_object_dtype(series.dtype):
        return True
    if types.is_object_dtype(series.dtype):
        return bool(series.dropna().map(lambda v: isinstance(v, str)).all())
    return False


FIELD_TYPES: dict[str, FieldType] = {
    "int": FieldType("int", _is_int, lambda _name, i: i + 1, "integer"),
    "float": FieldType("float", _is_float, lambda _name, i: 0.5 + i, "number"),
    "str": FieldType("str", _is_str, lambda name, i: f"{name}-{i + 1}", "text"),
    "bool": FieldType("bool", _is_bool, lambda _name, i: i % 2 == 0, "true/false"),
}


@dataclass(frozen=True)
class Field:
    """One named, typed column of a model's input or output.

    `type` is one of `int`, `float`, `str`, `bool`. `nullable` allows missing values; `example`
    is the value `ModelSchema.example()` puts in this column (a generated one if omitted).
    """

    name: str
    type: str
    description: str = ""
    nullable: bool = False
    example: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SchemaError(f"a field name must be a non-empty string, got {self.name!r}")
        if self.type not in FIELD_TYPES:
            known = ", ".join(FIELD_TYPES)
            raise SchemaError(
                f"field {self.name!r} has unknown type {self.type!r}; use one of {known}", field=self.name
            )

    def to_dict(self) -> dict[str, Any]:
        """The field as JSON-ready data (the form stored in an artifact's manifest)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.description:
            out["description"] = self.description
        if self.example is not None:
            out["example"] = self.example
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Field:
        """Rebuild a field from `to_dict()` output."""
        return cls(
            name=data["name"],
            type=data["type"],
            description=data.get("description", ""),
            nullable=bool(data.get("nullable", False)),
            example=data.get("example"),
        )


@dataclass(frozen=True)
class ModelSchema:
    """The typed inputs a model's `predict()` accepts and the outputs it returns.

    `features` are inputs read from the feature store (`mallard.FeatureRef("driver_stats:rating")`)
    by the `entity_keys` input columns; the prediction gateway adds them to each request's frame
    (`enrich`) before `predict` sees it.
    """

    inputs: list[Field] = field(default_factory=list)
    outputs: list[Field] = field(default_factory=list)
    features: list[FeatureRef] = field(default_factory=list)
    entity_keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", list(self.inputs))
        object.__setattr__(self, "outputs", list(self.outputs))
        try:
            refs = [f if isinstance(f, FeatureRef) else FeatureRef(f) for f in self.features]
        except ValueError as exc:
            raise SchemaError(str(exc), field="features") from exc
        object.__setattr__(self, "features", refs)
        object.__setattr__(self, "entity_keys", list(self.entity_keys))
        names = {f.name for f in self.inputs}
        if refs and not self.entity_keys:
            raise SchemaError("a schema with features needs entity_keys (the input columns to look them up by)")
        for key in self.entity_keys:
            if key not in names:
                raise SchemaError(f"entity key {key!r} must be one of the inputs", field=key)
        for ref in refs:
            if ref.type is not None and ref.type not in FIELD_TYPES:
                raise SchemaError(f"feature {ref.ref} has unknown type {ref.type!r}", field=ref.column)
            if ref.column in names:
                raise SchemaError(
                    f"feature {ref.ref} clashes with input {ref.column!r}; give it an alias", field=ref.column
                )
            names.add(ref.column)
        for side, fields in (("inputs", self.inputs), ("outputs", self.outputs)):
            seen: set[str] = set()
            for f in fields:
                if not isinstance(f, Field):
                    raise SchemaError(f"schema {side} must be mallard.Field objects, got {type(f).__name__}")
                if f.name in seen:
                    raise SchemaError(f"field {f.name!r} appears twice in the schema {side}", field=f.name)
                seen.add(f.name)

    def validate(self, df: pd.DataFrame) -> None:
        """Check that `df` has every input field with the right type; extra columns are allowed.

        Raises `SchemaError` naming the first field that is missing, mistyped or has missing values.
        """
        _check_frame(self.inputs, df, "input")

    def validate_outputs(self, df: pd.DataFrame) -> None:
        """Check a frame returned by `predict()` against the output fields."""
        _check_frame(self.outputs, df, "output")

    def example(self, n: int = 1) -> pd.DataFrame:
        """A frame of `n` input rows that satisfies the schema (each field's `example`, or generated values)."""
        import pandas as pd

        if n < 1:
            raise ValueError("example() needs n >= 1")
        columns: dict[str, Any] = {}
        for f in self.inputs:
            values = [f.example if f.example is not None else FIELD_TYPES[f.type].example(f.name, i) for i in range(n)]
            columns[f.name] = pd.Series(values, dtype=_example_dtype(f.type))
        for ref in self.features:  # what the gateway adds from the feature store
            if ref.type in FIELD_TYPES:
                values = [FIELD_TYPES[ref.type].example(ref.column, i) for i in range(n)]
                columns[ref.column] = pd.Series(values, dtype=_example_dtype(ref.type))
            else:
                columns[ref.column] = pd.Series([None] * n, dtype=object)
        return pd.DataFrame(columns, index=range(n))

    def enrich(self, df: pd.DataFrame, lookup: OnlineLookup) -> pd.DataFrame:
        """`df` with this schema's feature columns read online through `lookup` (see `mallard.enrichment`)."""
        from mallard.enrichment import enrich

        return enrich(df, self.features, lookup, entity_keys=self.entity_keys)

    def to_dict(self) -> dict[str, Any]:
        """The schema as JSON-ready data."""
        out: dict[str, Any] = {
            "inputs": [f.to_dict() for f in self.inputs],
            "outputs": [f.to_dict() for f in self.outputs],
        }
        if self.features:
            out["features"] = [f.to_dict() for f in self.features]
            out["entity_keys"] = list(self.entity_keys)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSchema:
        """Rebuild a schema from `to_dict()` output."""
        return cls(
            inputs=[Field.from_dict(f) for f in data.get("inputs", [])],
            outputs=[Field.from_dict(f) for f in data.get("outputs", [])],
            features=[FeatureRef.from_dict(f) for f in data.get("features", [])],
            entity_keys=list(data.get("entity_keys", [])),
        )


def _example_dtype(type_name: str) -> str | None:
    # str: None lets pandas pick its default text dtype (object in pandas 2, str in pandas 3).
    return {"int": "int64", "float": "float64", "bool": "bool"}.get(type_name)


def _check_frame(fields: Iterable[Field], df: Any, side: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame of {side}s, got {type(df).__name__}")
    for f in fields:
        if f.name not in df.columns:
            raise SchemaError(
                f"{side} field {f.name!r} is missing (columns: {list(map(str, df.columns))})", field=f.name
            )
        column = df[f.name]
        if isinstance(column, pd.DataFrame):
            raise SchemaError(f"{side} field {f.name!r} appears in more than one column", field=f.name)
        has_missing = bool(column.isna().any())
        if has_missing and not f.nullable:
            raise SchemaError(
                f"{side} field {f.name!r} has missing values but is not nullable (Field(..., nullable=True))",
                field=f.name,
            )
        checked = column.dropna() if has_missing else column
        if has_missing and len(checked) == 0:
            continue
        if has_missing and checked.dtype == object:
            checked = checked.infer_objects()
        if f.type == "int" and has_missing and _is_float(checked) and bool((checked % 1 == 0).all()):
            continue  # pandas stores an int column with gaps as float; whole numbers are still ints
        if not FIELD_TYPES[f.type].accepts(checked):
            raise SchemaError(
                f"{side} field {f.name!r} must be {f.type} ({FIELD_TYPES[f.type].description}), "
                f"got column of dtype {column.dtype}",
                field=f.name,
            )
