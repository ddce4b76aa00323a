"""Prediction inputs checked against the model's schema: every bad input names its field."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane_agent.api.inputs import InputLimits, InputSchema, read_arrow_stream, write_arrow_stream
from data_plane_agent.grpc_predict import columns_to_table, table_to_columns
from mallard.schema import Field, ModelSchema
from shared.errors import InvalidInput

SCHEMA = ModelSchema(
    inputs=[
        Field("age", "int"),
        Field("income", "float"),
        Field("plan", "str"),
        Field("active", "bool"),
        Field("note", "str", nullable=True),
    ],
    outputs=[Field("score", "float")],
)
ROW = {"age": 41, "income": 5200.5, "plan": "pro", "active": True, "note": None}


def schema(**limits: int) -> InputSchema:
    return InputSchema(SCHEMA, InputLimits(**limits))


def refused(call: object, field: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field, caught.value.message
    assert caught.value.http_status == 422
    return caught.value.message


def test_records_columns_and_arrow_give_the_same_canonical_table() -> None:
    inputs = schema()
    from_records = inputs.from_records([ROW, {**ROW, "age": 7, "income": 3, "note": "x"}])
    columns = {k: [ROW[k], {**ROW, "age": 7, "income": 3, "note": "x"}[k]] for k in ROW}
    from_columns = inputs.from_columns(columns)
    arrow_in = pa.table(
        {
            "note": pa.array([None, "x"], pa.large_string()),
            "age": pa.array([41, 7], pa.int32()),
            "income": pa.array([5200.5, 3.0], pa.float32()),
            "plan": ["pro", "pro"],
            "active": [True, True],
        }
    )
    from_arrow = inputs.from_arrow(read_arrow_stream(write_arrow_stream(arrow_in)))
    for table in (from_records, from_columns, from_arrow):
        assert table.schema.names == ["age", "income", "plan", "active", "note"]
        assert [t for t in table.schema.types] == [pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.string()]
        assert table.column("age").to_pylist() == [41, 7]
        assert table.column("note").to_pylist() == [None, "x"]
    assert from_records.column("income").to_pylist() == [5200.5, 3.0]


def test_bad_records_name_the_field() -> None:
    inputs = schema()
    assert "must be an integer" in refused(lambda: inputs.from_records([{**ROW, "age": "41"}]), "age")
    refused(lambda: inputs.from_records([{**ROW, "age": True}]), "age")  # a bool is not an int
    refused(lambda: inputs.from_records([{**ROW, "age": 4.5}]), "age")
    refused(lambda: inputs.from_records([{**ROW, "income": "high"}]), "income")
    refused(lambda: inputs.from_records([{**ROW, "active": 1}]), "active")
    refused(lambda: inputs.from_records([{**ROW, "plan": None}]), "plan")  # not nullable
    refused(lambda: inputs.from_records([{**ROW, "age": 2**70}]), "age")
    missing = {k: v for k, v in ROW.items() if k != "plan"}
    assert "missing from records[1]" in refused(lambda: inputs.from_records([ROW, missing]), "plan")
    assert "unknown input field 'tenant'" in refused(lambda: inputs.from_records([{**ROW, "tenant": "x"}]), "tenant")
    refused(lambda: inputs.from_records([ROW, "not an object"]), "records")
    refused(lambda: inputs.from_records({"age": 1}), "records")
    refused(lambda: inputs.from_records([]), "records")
    assert "at most 3" in refused(lambda: schema(max_rows=3).from_records([ROW] * 4), "records")


def test_bad_columns_name_the_field() -> None:
    inputs = schema()
    columns = {k: [v] for k, v in ROW.items()}
    refused(lambda: inputs.from_columns({**columns, "age": ["x"]}), "age")
    refused(lambda: inputs.from_columns({**columns, "age": 3}), "age")
    refused(lambda: inputs.from_columns({**columns, "extra": [1]}), "extra")
    refused(lambda: inputs.from_columns({k: v for k, v in columns.items() if k != "income"}), "income")
    refused(lambda: inputs.from_columns({**columns, "age": [1, 2]}), "columns")
    refused(lambda: inputs.from_columns([ROW]), "columns")


def test_bad_arrow_names_the_field() -> None:
    inputs = schema()
    good = pa.Table.from_pylist([ROW])
    refused(lambda: inputs.from_arrow(good.set_column(0, "age", pa.array(["41"]))), "age")
    refused(lambda: inputs.from_arrow(good.set_column(3, "active", pa.array([1]))), "active")
    refused(lambda: inputs.from_arrow(good.set_column(2, "plan", pa.array([None], pa.string()))), "plan")
    refused(lambda: inputs.from_arrow(good.append_column("extra", pa.array([1]))), "extra")
    refused(lambda: inputs.from_arrow(good.drop_columns(["income"])), "income")
    refused(lambda: inputs.from_arrow(good.set_column(0, "age", pa.array([2**63], pa.uint64()))), "age")
    for garbage in (b"", b"not arrow at all", write_arrow_stream(good)[:-20], b"\xff\xff\xff\xff" + b"\x00" * 64):
        assert "Arrow IPC" in refused(lambda garbage=garbage: read_arrow_stream(garbage), "body")


def test_json_bodies() -> None:
    inputs = schema()
    table, form = inputs.from_json_body(json.dumps({"records": [ROW]}).encode())
    assert (form, table.num_rows) == ("records", 1)
    table, form = inputs.from_json_body(json.dumps({"columns": {k: [v] for k, v in ROW.items()}}).encode())
    assert (form, table.num_rows) == ("columns", 1)
    for body in (b"{", b"[]", b'{"rows": []}', b'{"records": [], "columns": {}}', b"\xff\xfe"):
        refused(lambda body=body: inputs.from_json_body(body), "body")


def test_typed_protobuf_columns_round_trip() -> None:
    inputs = schema()
    table = inputs.from_records([ROW, {**ROW, "note": "n"}])
    back = inputs.from_arrow(columns_to_table(table_to_columns(table)))
    assert back.equals(table)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "age": st.integers(-(2**63), 2**63 - 1),
                "income": st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
                "plan": st.text(max_size=20),
                "active": st.booleans(),
                "note": st.none() | st.text(max_size=5),
            }
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_valid_records_are_accepted_unchanged(records: list[dict[str, object]]) -> None:
    table = schema().from_records(records)
    assert table.num_rows == len(records)
    assert table.column("age").to_pylist() == [r["age"] for r in records]
    assert table.column("income").to_pylist() == [float(r["income"]) for r in records]  # type: ignore[arg-type]
    assert table.column("note").to_pylist() == [r["note"] for r in records]
