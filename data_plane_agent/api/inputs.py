"""Prediction inputs, checked against the model's schema before any model sees them.

The gateway accepts JSON records (`[{"age": 3, ...}, ...]`), JSON columns (`{"age": [3, ...]}`)
and Arrow IPC streams, from REST and gRPC alike, and turns each into one Arrow table with the
schema's canonical types. Anything that does not fit is an `InvalidInput` naming the field:
a missing or unknown field, a wrong type, a null in a non-nullable field, too many rows.

JSON inputs take a fast path: the values' Python types are checked a column at a time
(`set(map(type, column))`, no Python loop per value) and the whole request is converted by one
`pa.array` call (a struct of the schema's types; each `pa.array` call also reads `os.environ`).
Only when that fails are the values walked one by one, which finds and names the bad field with
the same messages as always.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
import pyarrow as pa

from mallard.schema import Field, ModelSchema
from shared.errors import InvalidInput

ARROW_TYPES: dict[str, pa.DataType] = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


@dataclass(frozen=True)
class InputLimits:
    """How big one prediction request may be."""

    max_rows: int = 100_000
    max_bytes: int = 16 * 1024 * 1024


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_float(value: object) -> bool:
    return type(value) is float or type(value) is int


def _is_str(value: object) -> bool:
    return type(value) is str


def _is_bool(value: object) -> bool:
    return type(value) is bool


PYTHON_CHECKS: dict[str, Callable[[object], bool]] = {
    "int": _is_int,
    "float": _is_float,
    "str": _is_str,
    "bool": _is_bool,
}
# The same checks as PYTHON_CHECKS, as the set of Python types each accepts (JSON gives no subclasses).
PYTHON_TYPES: dict[str, frozenset[type]] = {
    "int": frozenset({int}),
    "float": frozenset({float, int}),
    "str": frozenset({str}),
    "bool": frozenset({bool}),
}
ARROW_CHECKS: dict[str, Callable[[pa.DataType], bool]] = {
    "int": pa.types.is_integer,
    "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    "str": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t),
    "bool": pa.types.is_boolean,
}


# 19 digits in a row may be an integer beyond 64 bits, which orjson would turn into a float. Found
# by mapping digits to "0" and everything else to " " (two C passes; a regex is 10x slower).
DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
LONG_DIGITS = b"0" * 19


def parse_json(body: bytes) -> Any:
    """`json.loads(body)`, 3-4x faster for large bodies: orjson parses what it can parse exactly as
    `json` does; `json` itself handles the rest (and raises its usual errors): NaN, Infinity,
    lone surrogates, a BOM, integers beyond 64 bits (orjson would make them floats)."""
    if LONG_DIGITS not in body.translate(DIGITS_AS_ZEROS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _describe(value: object) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


class InputSchema:
    """A model's input fields compiled for fast checks (one per served schema)."""

    def __init__(self, schema: ModelSchema, limits: InputLimits | None = None) -> None:
        self.fields: list[Field] = list(schema.inputs)
        self.names = [f.name for f in self.fields]
        self.name_set = frozenset(self.names)
        self.limits = limits or InputLimits()
        self.arrow_schema = pa.schema([pa.field(f.name, ARROW_TYPES[f.type], nullable=f.nullable) for f in self.fields])
        self._struct = pa.struct(list(self.arrow_schema))
        self._allowed = [PYTHON_TYPES[f.type] | ({type(None)} if f.nullable else set()) for f in self.fields]
        self._row: Callable[[Any], tuple[Any, ...]] | None = None
        if len(self.names) > 1:
            self._row = itemgetter(*self.names)  # a record's values in schema order, as a tuple
        elif self.names:
            self._row = lambda record, name=self.names[0]: (record[name],)

    def _fast_table(self, rows: list[tuple[Any, ...]], columns: Sequence[Sequence[Any]]) -> pa.Table | None:
        """The canonical table when every column holds only its field's Python types and Arrow
        converts the rows; None otherwise (the caller then walks the values to name the problem)."""
        for allowed, column in zip(self._allowed, columns, strict=True):
            if not allowed.issuperset(map(type, column)):
                return None
        try:
            batch = pa.RecordBatch.from_struct_array(pa.array(rows, type=self._struct))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
        return pa.Table.from_batches([batch], schema=self.arrow_schema)

    # ---- shared checks ----------------------------------------------------------------

    def _rows(self, count: int, where: str) -> None:
        if count == 0:
            raise InvalidInput(f"{where} is empty; send at least one row", field=where)
        if count > self.limits.max_rows:
            raise InvalidInput(
                f"{where} has {count} rows; at most {self.limits.max_rows} are accepted per request "
                "(split it, or use a batch deployment)",
                field=where,
            )

    def _unknown(self, names: set[str] | frozenset[str] | list[str], where: str) -> None:
        extra = sorted(set(names) - self.name_set)
        if extra:
            raise InvalidInput(
                f"unknown input field {extra[0]!r} in {where}; the model's inputs are: {', '.join(self.names)}",
                field=extra[0],
            )

    def _column(self, f: Field, values: list[Any], where: str) -> pa.Array:
        check = PYTHON_CHECKS[f.type]
        for i, value in enumerate(values):
            if value is None:
                if not f.nullable:
                    raise InvalidInput(
                        f"input field {f.name!r} is null in {where}[{i}] but is not nullable", field=f.name
                    )
            elif not check(value):
                raise InvalidInput(
                    f"input field {f.name!r} must be {TYPE_WORDS[f.type]} ({f.type}), got {_describe(value)} "
                    f"in {where}[{i}]",
                    field=f.name,
                )
        try:
            return pa.array(values, type=ARROW_TYPES[f.type])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:  # e.g. an int beyond 64 bits
            raise InvalidInput(f"input field {f.name!r} in {where}: {exc}", field=f.name) from exc

    # ---- the three forms --------------------------------------------------------------

    def from_records(self, records: object) -> pa.Table:
        """`[{"field": value, ...}, ...]`: one object per row."""
        if not isinstance(records, list):
            raise InvalidInput("records must be a list of objects, one per row", field="records")
        self._rows(len(records), "records")
        if self._row is not None:
            try:
                rows = list(map(self._row, records))  # KeyError / TypeError: a missing field, not an object
                same_size = set(map(len, records)) == {len(self.names)}  # else an unknown field
            except (KeyError, TypeError):
                same_size = False
            if same_size:
                table = self._fast_table(rows, list(zip(*rows, strict=True)))
                if table is not None:
                    return table
        return self._checked_records(records)

    def _checked_records(self, records: list[Any]) -> pa.Table:
        """Records walked value by value: the first problem raised as an InvalidInput naming it."""
        names = self.names
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidInput(f"records[{i}] must be an object of field: value", field="records")
            if len(record) != len(names) or not all(n in record for n in names):
                missing = [n for n in names if n not in record]
                if missing:
                    raise InvalidInput(f"input field {missing[0]!r} is missing from records[{i}]", field=missing[0])
                self._unknown(list(record), f"records[{i}]")
        columns = [self._column(f, [r[f.name] for r in records], "records") for f in self.fields]
        return pa.Table.from_arrays(columns, schema=self.arrow_schema)

    def from_columns(self, columns: object) -> pa.Table:
        """`{"field": [value, ...], ...}`: one list per field, all the same length."""
        if not isinstance(columns, dict):
            raise InvalidInput("columns must be an object of field: [values]", field="columns")
        self._unknown(list(columns), "columns")
        missing = [n for n in self.names if n not in columns]
        if missing:
            raise InvalidInput(f"input field {missing[0]!r} is missing from columns", field=missing[0])
        lengths = set()
        for name in self.names:
            if not isinstance(columns[name], list):
                raise InvalidInput(f"columns.{name} must be a list of values", field=name)
            lengths.add(len(columns[name]))
        if len(lengths) > 1:
            raise InvalidInput(
                f"every column must have the same length, got lengths {sorted(lengths)}", field="columns"
            )
        self._rows(lengths.pop() if lengths else 0, "columns")
        values = [columns[name] for name in self.names]
        table = self._fast_table(list(zip(*values, strict=True)), values)
        if table is not None:
            return table
        arrays = [self._column(f, columns[f.name], f"columns.{f.name}") for f in self.fields]
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema)

    def from_arrow(self, table: pa.Table) -> pa.Table:
        """A decoded Arrow table: columns checked by type and nulls, cast to the canonical types
        (a column already of its canonical type is taken as it is: no cast on the hot path)."""
        names = table.column_names
        self._unknown(names, "the Arrow table")
        if len(set(names)) != len(names):
            raise InvalidInput("the Arrow table has duplicate column names", field="body")
        self._rows(table.num_rows, "body")
        position = {name: i for i, name in enumerate(names)}
        arrays = []
        for f, canonical in zip(self.fields, self.arrow_schema.types, strict=True):
            i = position.get(f.name)
            if i is None:
                raise InvalidInput(f"input field {f.name!r} is missing from the Arrow table", field=f.name)
            column = table.column(i)
            exact = column.type == canonical
            if not exact and not ARROW_CHECKS[f.type](column.type):
                raise InvalidInput(
                    f"input field {f.name!r} must be {TYPE_WORDS[f.type]} ({f.type}), got Arrow type {column.type}",
                    field=f.name,
                )
            if column.null_count and not f.nullable:
                raise InvalidInput(f"input field {f.name!r} has nulls but is not nullable", field=f.name)
            if not exact:
                try:
                    column = column.cast(canonical)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InvalidInput(f"input field {f.name!r}: {exc}", field=f.name) from exc
            arrays.append(column)
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema)

    def from_json_body(self, body: bytes) -> tuple[pa.Table, str]:
        """A JSON request body, `{"records": [...]}` or `{"columns": {...}}`. Returns (table, form)."""
        try:
            data = parse_json(body)
        except ValueError as exc:
            raise InvalidInput(f"request body is not valid JSON ({exc})", field="body") from exc
        if not isinstance(data, dict) or len(data) != 1 or not ({"records", "columns"} & set(data)):
            raise InvalidInput(
                'the body must be {"records": [{...}, ...]} or {"columns": {"field": [...], ...}}', field="body"
            )
        if "records" in data:
            return self.from_records(data["records"]), "records"
        return self.from_columns(data["columns"]), "columns"


def read_arrow_stream(body: bytes) -> pa.Table:
    """Decode an Arrow IPC stream, or an InvalidInput that says it is not one."""
    if not body:
        raise InvalidInput("the body is empty; send an Arrow IPC stream", field="body")
    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        raise InvalidInput(f"the body is not a valid Arrow IPC stream ({exc})", field="body") from exc


def write_arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def outputs_json(table: pa.Table, form: str) -> Any:
    """Outputs in the form the request came in: a list of records, or columns."""
    return table.to_pylist() if form == "records" else table.to_pydict()


def _finite(column: pa.ChunkedArray) -> bool:
    """No NaN or infinity in the column (a finite sum says so; a null or an overflowing sum says
    "maybe not", which only costs the slower encoder)."""
    return not pa.types.is_floating(column.type) or math.isfinite(column.to_numpy().sum())


def answer_json(answer: dict[str, Any], outputs: pa.Table) -> bytes:
    """`json.dumps(answer).encode()`, written by orjson (in C, 5-10x faster) whenever that is the same
    JSON: not when an output is NaN or infinite (json writes NaN / Infinity, orjson null)."""
    if all(_finite(column) for column in outputs.columns):
        try:
            return orjson.dumps(answer)
        except (orjson.JSONEncodeError, TypeError):  # e.g. a lone surrogate in a string output
            pass
    return json.dumps(answer).encode()
