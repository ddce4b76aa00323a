"""The replica protocol's body format: one Arrow IPC stream per request and per answer."""

from __future__ import annotations

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
