"""The lake's write-ahead spool: every recorded prediction is appended to a local segment file
before `record()` returns, so a killed agent loses nothing the kernel has accepted.

A segment is a file under `<home>/lake/spool/` named by a segment id that sorts by creation
time. The writer rotates the current segment at each flush, turns the closed one into Parquet,
then deletes it; segments left by a crash are replayed at start. `write(2)` happens on every
record (the page cache survives `kill -9`); `fsync` happens in batches (`fsync_interval`, outside
the writer's lock), which bounds what a power loss or kernel crash can take.

Segment format (`.spool`), cheap to write on the predict path: a sequence of frames, each
`u32 length, u32 crc32, body` (little-endian), the body being either
- a schema, `b"S" u32 ref` + the Arrow IPC schema message, written once per segment and schema; or
- a record, `b"R" u32 header_len u32 inputs_ref u32 inputs_len u32 outputs_ref u32 outputs_len`,
  the header (the record's scalar fields as a JSON array, in `_HEADER` order), then the inputs
  and the outputs: ref 0 is none, 1 is JSON text, 2 a whole Arrow IPC stream (a table with
  dictionary columns), n >= 3 an Arrow IPC record batch message of schema n (no JSON is made on
  the predict path: the lake renders it when it flushes).
A torn last frame (the process died mid-write) is skipped on replay; a frame whose crc does not
match is skipped with a warning. Segments of the earlier JSON-lines format (`.jsonl`, one
record per line) are still replayed.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from data_plane_agent.lake.records import PredictionRecord
from mallard.serving.wire import decode_table, encode_table

log = logging.getLogger("mallard.agent.lake")

SUFFIX = ".spool"
LEGACY_SUFFIX = ".jsonl"
_HEADER = [
    "model",
    "deployment_id",
    "variation",
    "build_id",
    "request_id",
    "timestamp_ms",
    "latency_ms",
    "status",
    "shadow",
    "rows",
    "error",
]
_FRAME = struct.Struct("<II")  # body length, crc32 of the body
_SCHEMA = struct.Struct("<cI")  # b"S", ref
_RECORD = struct.Struct("<cIIIII")  # b"R", header length, inputs ref and length, outputs ref and length
_NONE, _TEXT, _STREAM = 0, 1, 2
_recent: list[tuple[pa.Schema, bool]] = []  # schemas seen lately, and whether a batch message can carry them


_Payload = tuple[pa.Schema | int, bytes | pa.Buffer]  # (schema of a batch message, or a fixed ref; bytes)


@dataclass(slots=True)
class Encoded:
    """A record serialised for the spool, before the segment gives its schemas a ref (`prepare`)."""

    header: bytes
    inputs: _Payload
    outputs: _Payload | None

    @property
    def size(self) -> int:
        out = len(self.outputs[1]) if self.outputs is not None else 0
        return _FRAME.size + _RECORD.size + len(self.header) + len(self.inputs[1]) + out


def prepare(record: PredictionRecord) -> Encoded:
    """The record's fields and tables as bytes: Arrow record batches as they are in memory."""
    header = json.dumps([getattr(record, name) for name in _HEADER], separators=(",", ":")).encode()
    outputs = None if record.outputs is None else _payload(record.outputs)
    return Encoded(header, _payload(record.inputs), outputs)


def _payload(value: pa.Table | str) -> _Payload:
    """(schema, record batch message), or (_TEXT, text); a table with dictionaries: (_STREAM, IPC stream)."""
    if isinstance(value, str):
        return _TEXT, value.encode()
    if not _batchable(value.schema):
        return _STREAM, encode_table(value)
    batches = value.to_batches()
    if len(batches) != 1:
        combined = value.combine_chunks().to_batches()
        batch = combined[0] if combined else pa.RecordBatch.from_pylist([], schema=value.schema)
    else:
        batch = batches[0]
    return value.schema, batch.serialize()


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_schema_messages: list[tuple[pa.Schema, bytes]] = []  # recent schemas and their IPC schema message


def stream_bytes(payload: _Payload) -> bytes | None:
    """A table payload as a standalone Arrow IPC stream (schema message + the batch already
    serialised + end of stream): no second serialisation of the rows. None for JSON text."""
    kind, data = payload
    if isinstance(kind, pa.Schema):
        message = next((m for known, m in _schema_messages if known is kind or known.equals(kind)), None)
        if message is None:
            message = kind.serialize().to_pybytes()
            _schema_messages.insert(0, (kind, message))
            del _schema_messages[16:]
        return b"".join((message, data, _EOS))
    return bytes(data) if kind == _STREAM else None


def _batchable(schema: pa.Schema) -> bool:
    for known, batchable in _recent:
        if known is schema or known.equals(schema):
            return batchable
    batchable = not any(_has_dictionary(field.type) for field in schema)
    _recent.insert(0, (schema, batchable))
    del _recent[16:]
    return batchable


def _has_dictionary(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return True
    return any(_has_dictionary(kind.field(i).type) for i in range(kind.num_fields))


class Segment:
    """One spool file being appended to. `append` is serialised by the lake's lock; `sync` and
    `close` may run in another thread at the same time (they take the segment's own lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.id = path.name.rsplit(".", 1)[0]
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size
        self._unsynced = False
        self._schemas: list[tuple[pa.Schema, int]] = []  # refs of the schemas written to this file
        self._fd_lock = threading.Lock()

    def append(self, encoded: Encoded) -> int:
        """Write one record (and any schema this file lacks) with one writev; returns the bytes written."""
        pieces: list[bytes | pa.Buffer] = []
        in_ref = self._ref(encoded.inputs[0], pieces)
        out_ref = _NONE if encoded.outputs is None else self._ref(encoded.outputs[0], pieces)
        in_bytes = encoded.inputs[1]
        out_bytes = encoded.outputs[1] if encoded.outputs is not None else b""
        head = _RECORD.pack(b"R", len(encoded.header), in_ref, len(in_bytes), out_ref, len(out_bytes))
        crc = zlib.crc32(out_bytes, zlib.crc32(in_bytes, zlib.crc32(encoded.header, zlib.crc32(head))))
        length = len(head) + len(encoded.header) + len(in_bytes) + len(out_bytes)
        pieces += [_FRAME.pack(length, crc), head, encoded.header, in_bytes, out_bytes]
        written = self._write(pieces)
        self._unsynced = True
        return written

    def _ref(self, schema: pa.Schema | int, pieces: list[bytes | pa.Buffer]) -> int:
        if isinstance(schema, int):
            return schema
        for known, ref in self._schemas:
            if known is schema or known.equals(schema, check_metadata=True):
                return ref
        ref = len(self._schemas) + 3
        self._schemas.append((schema, ref))
        message = schema.serialize()
        head = _SCHEMA.pack(b"S", ref)
        pieces += [_FRAME.pack(len(head) + len(message), zlib.crc32(message, zlib.crc32(head))), head, message]
        return ref

    def _write(self, pieces: list[bytes | pa.Buffer]) -> int:
        total = sum(len(p) for p in pieces)
        done = os.writev(self._fd, pieces)
        if done < total:  # a short write (signal, full disk): write the rest, or raise
            rest = memoryview(b"".join(bytes(p) for p in pieces))[done:]
            while rest:
                n = os.write(self._fd, rest)
                rest = rest[n:]
        self.size += total
        return total

    def sync(self) -> None:
        with self._fd_lock:
            if self._unsynced and self._fd >= 0:
                self._unsynced = False
                os.fsync(self._fd)

    def close(self) -> None:
        with self._fd_lock:
            if self._fd >= 0:
                if self._unsynced:
                    self._unsynced = False
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


class Spool:
    """The directory of segments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def new_segment(self) -> Segment:
        segment_id = f"{time.time_ns() // 1_000_000:013d}-{uuid.uuid4().hex[:12]}"
        return Segment(self.root / f"{segment_id}{SUFFIX}")

    def leftovers(self) -> list[Path]:
        """Segments on disk (from a previous run), oldest first."""
        return sorted([*self.root.glob(f"*{SUFFIX}"), *self.root.glob(f"*{LEGACY_SUFFIX}")], key=lambda p: p.name)

    @staticmethod
    def read(path: Path) -> list[PredictionRecord]:
        """The records of a segment. A torn last frame (the process died mid-write) is skipped."""
        if path.name.endswith(LEGACY_SUFFIX):
            return _read_lines(path)
        data = path.read_bytes()
        view = memoryview(data)
        schemas: dict[int, pa.Schema] = {}
        records: list[PredictionRecord] = []
        position = 0
        while position < len(data):
            length, crc = _FRAME.unpack_from(data, position) if position + _FRAME.size <= len(data) else (len(data), 0)
            start, end = position + _FRAME.size, position + _FRAME.size + length
            if end > len(data):  # the frame (or its header) was cut short
                log.warning("lake spool %s: dropping a torn last frame (%d bytes)", path.name, len(data) - position)
                break
            position = end
            body = view[start:end]
            try:
                if zlib.crc32(body) != crc:
                    raise ValueError("its checksum does not match")
                if body[:1] == b"S":
                    _, ref = _SCHEMA.unpack_from(body)
                    schemas[ref] = pa.ipc.read_schema(pa.py_buffer(body[_SCHEMA.size :]))
                else:
                    records.append(_decode(body, schemas))
            except (ValueError, TypeError, KeyError, struct.error, pa.ArrowException) as exc:
                log.warning("lake spool %s: the frame at byte %d is unreadable (%s); skipped", path.name, start, exc)
        return records


def _decode(body: memoryview, schemas: dict[int, pa.Schema]) -> PredictionRecord:
    tag, header_len, in_ref, in_len, out_ref, out_len = _RECORD.unpack_from(body)
    if tag != b"R":
        raise ValueError(f"unknown frame type {bytes(tag)!r}")
    at = _RECORD.size
    header = json.loads(bytes(body[at : at + header_len]))
    at += header_len
    inputs = _value(body[at : at + in_len], in_ref, schemas)
    outputs = _value(body[at + in_len : at + in_len + out_len], out_ref, schemas)
    if not isinstance(header, list) or len(header) != len(_HEADER) or inputs is None:
        raise ValueError("not a spooled prediction record")
    return PredictionRecord(**dict(zip(_HEADER, header, strict=True)), inputs=inputs, outputs=outputs)


def _value(data: memoryview, ref: int, schemas: dict[int, pa.Schema]) -> pa.Table | str | None:
    if ref == _NONE:
        return None
    if ref == _TEXT:
        return bytes(data).decode()
    if ref == _STREAM:
        return decode_table(data)
    batch = pa.ipc.read_record_batch(pa.py_buffer(data), schemas[ref])
    return pa.Table.from_batches([batch])


# ---- the JSON-lines format of earlier versions (replayed; also used by tests to make old segments)


def encode(record: PredictionRecord) -> bytes:
    """One `.jsonl` spool line: the record's fields as a JSON array (the earlier format)."""
    fields = [*_HEADER[:-1], "inputs_json", "outputs_json", "error"]
    return json.dumps([getattr(record, name) for name in fields], separators=(",", ":")).encode() + b"\n"


def _read_lines(path: Path) -> list[PredictionRecord]:
    fields = [*_HEADER[:-1], "inputs_json", "outputs_json", "error"]
    records: list[PredictionRecord] = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                log.warning("lake spool %s: dropping a torn last line (%d bytes)", path.name, len(line))
                break
            try:
                values = json.loads(line)
                if not isinstance(values, list) or len(values) > len(fields):
                    raise ValueError("not a spooled prediction record")
                records.append(PredictionRecord(**dict(zip(fields, values, strict=False))))
            except (ValueError, TypeError) as exc:
                log.warning("lake spool %s line %d is unreadable (%s); skipped", path.name, number, exc)
    return records
