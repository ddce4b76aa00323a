"""The replica protocol's body format: one Arrow IPC stream per request and per answer."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def encode_table(table: pa.Table) -> bytes:
    """A table as the bytes of an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_table(body: bytes | memoryview) -> pa.Table:
    """The table in an Arrow IPC stream; `pa.ArrowInvalid` when the bytes are not one."""
    return pa.ipc.open_stream(pa.py_buffer(body)).read_all()


def table_to_frame(table: pa.Table) -> Any:
    """The pandas DataFrame `predict()` receives, as `table.to_pandas()` makes it.

    A table whose columns all share one numeric type and hold no nulls (the common case of a
    model on numeric features) becomes one 2-D block directly, several times cheaper than
    `to_pandas()` for small tables, with the same dtypes.
    """
    import pandas as pd

    types = {field.type for field in table.schema}
    if table.num_columns and len(types) == 1 and _plain_numeric(next(iter(types))) and not _has_nulls(table):
        import numpy as np

        values = np.column_stack([column.to_numpy() for column in table.columns])
        return pd.DataFrame(values, columns=table.column_names, copy=False)
    return table.to_pandas()


def frame_to_table(frame: Any) -> pa.Table:
    """A DataFrame `predict()` returned, as an Arrow table (index dropped, no pandas metadata)."""
    import numpy as np
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"predict() must return a pandas DataFrame, got {type(frame).__name__}")
    names = [str(name) for name in frame.columns]
    if len(set(names)) == len(names):
        arrays = []
        for name in frame.columns:
            column = frame[name]
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
                arrays.append(pa.array(column.to_numpy(), from_pandas=True))  # NaN -> null, as from_pandas
            else:
                arrays.append(pa.Array.from_pandas(column))
        return pa.Table.from_arrays(arrays, names=names)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _plain_numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind))


def _has_nulls(table: pa.Table) -> bool:
    return any(column.null_count for column in table.columns)
