"""What `mallard models predict` sends for each way of giving it inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer

from data_plane_agent.api.inputs import InputSchema, read_arrow_stream
from mallard.cli.predict import _arrow_from_body, _body_from_json, _read_file
from mallard.schema import Field, ModelSchema

SCHEMA = InputSchema(ModelSchema(inputs=[Field("a", "int"), Field("b", "str")], outputs=[Field("y", "float")]))


def test_json_forms_become_records_or_columns() -> None:
    assert _body_from_json({"a": 1, "b": "x"}, "--json") == {"records": [{"a": 1, "b": "x"}]}
    assert _body_from_json([{"a": 1, "b": "x"}], "--json") == {"records": [{"a": 1, "b": "x"}]}
    assert _body_from_json({"columns": {"a": [1]}}, "--json") == {"columns": {"a": [1]}}
    with pytest.raises(typer.BadParameter):
        _body_from_json("just text", "--json")


def test_files_are_sent_as_json_or_arrow_the_gateway_accepts(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    pq.write_table(table, tmp_path / "in.parquet")
    (tmp_path / "in.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "in.json").write_text(json.dumps([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]))
    for name in ("in.parquet", "in.csv"):
        body, arrow = _read_file(tmp_path / name)
        assert body is None and arrow is not None
        assert SCHEMA.from_arrow(read_arrow_stream(arrow)).to_pydict() == {"a": [1, 2], "b": ["x", "y"]}
    body, arrow = _read_file(tmp_path / "in.json")
    assert arrow is None and body is not None
    assert SCHEMA.from_json_body(json.dumps(body).encode())[0].num_rows == 2
    # --grpc sends JSON inputs as Arrow.
    assert SCHEMA.from_arrow(read_arrow_stream(_arrow_from_body(body))).num_rows == 2
    (tmp_path / "in.txt").write_text("?")
    with pytest.raises(typer.BadParameter):
        _read_file(tmp_path / "in.txt")
