"""Schemas validate frames by field, generate examples, and round-trip through the manifest form."""

from __future__ import annotations

import pandas as pd
import pytest

from mallard import Field, ModelSchema, SchemaError

SCHEMA = ModelSchema(
    inputs=[
        Field("age", "int"),
        Field("income", "float"),
        Field("plan", "str"),
        Field("active", "bool"),
        Field("score", "float", nullable=True),
    ],
    outputs=[Field("churn_probability", "float")],
)


def test_example_satisfies_the_schema() -> None:
    example = SCHEMA.example(3)
    assert list(example.columns) == ["age", "income", "plan", "active", "score"]
    assert len(example) == 3
    SCHEMA.validate(example)
    assert ModelSchema(inputs=[Field("age", "int", example=42)]).example(2)["age"].tolist() == [42, 42]


def test_valid_frames_pass_including_ints_as_floats_and_gaps_in_nullable_fields() -> None:
    SCHEMA.validate(
        pd.DataFrame(
            {
                "age": [30, 40],
                "income": [1000, 2000],  # ints are valid floats
                "plan": ["basic", "pro"],
                "active": [True, False],
                "score": [None, 0.5],
                "extra": ["ignored", "ignored"],
            }
        )
    )


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"age": None}, "age", "input field 'age' is missing"),
        ({"age": [1.5, 2.5]}, "age", "input field 'age' must be int"),
        ({"income": ["a", "b"]}, "income", "input field 'income' must be float"),
        ({"plan": [1, 2]}, "plan", "input field 'plan' must be str"),
        ({"active": [1, 0]}, "active", "input field 'active' must be bool"),
        ({"income": [None, 1.0]}, "income", "input field 'income' has missing values but is not nullable"),
    ],
)
def test_invalid_frames_name_the_field(change: dict[str, object], field: str, message: str) -> None:
    frame = SCHEMA.example(2)
    for name, values in change.items():
        if values is None:
            frame = frame.drop(columns=[name])
        else:
            frame[name] = values
    with pytest.raises(SchemaError, match=message) as caught:
        SCHEMA.validate(frame)
    assert caught.value.field == field


def test_outputs_and_non_frames() -> None:
    SCHEMA.validate_outputs(pd.DataFrame({"churn_probability": [0.1]}))
    with pytest.raises(SchemaError, match="output field 'churn_probability' is missing"):
        SCHEMA.validate_outputs(pd.DataFrame({"p": [0.1]}))
    with pytest.raises(SchemaError, match="expected a pandas DataFrame of inputs, got list"):
        SCHEMA.validate([1, 2])  # type: ignore[arg-type]


def test_bad_schemas_are_refused() -> None:
    with pytest.raises(SchemaError, match="unknown type 'integer'; use one of int, float, str, bool"):
        Field("age", "integer")
    with pytest.raises(SchemaError, match="field 'age' appears twice in the schema inputs"):
        ModelSchema(inputs=[Field("age", "int"), Field("age", "float")])


def test_dict_round_trip() -> None:
    assert ModelSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
