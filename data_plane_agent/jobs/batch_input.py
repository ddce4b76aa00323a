"""Batch input: Parquet files (one file, a directory tree or an S3 prefix) read as a sequence of
fixed-size batches in a deterministic order, from any batch number, without reading what is skipped."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from data_plane_agent.storage import ObjectStore
from data_plane_agent.storage.arrow import location_filesystem
from shared.errors import InvalidInput


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    row_groups: list[int]  # rows per row group

    @property
    def rows(self) -> int:
        return sum(self.row_groups)


class BatchInput:
    """The input of a batch job. Files are taken in path order; hidden (`.`, `_`) files are skipped."""

    def __init__(self, filesystem: pafs.FileSystem, files: list[_File], schema: pa.Schema, location: str) -> None:
        self.filesystem = filesystem
        self.files = files
        self.schema = schema
        self.location = location

    @classmethod
    def open(cls, location: str, *, store: ObjectStore | None = None) -> BatchInput:
        """List and inspect the Parquet input at `location` (reads only the footers)."""
        try:
            filesystem, path = location_filesystem(location, store=store)
            info = filesystem.get_file_info(path)
            if info.type == pafs.FileType.File:
                paths = [path]
            elif info.type == pafs.FileType.Directory:
                selector = pafs.FileSelector(path, recursive=True)
                paths = sorted(
                    i.path
                    for i in filesystem.get_file_info(selector)
                    if i.type == pafs.FileType.File and not i.base_name.startswith((".", "_"))
                )
            else:
                raise InvalidInput(f"batch input {location!r} does not exist", field="batch.input")
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read batch input {location!r}: {exc}", field="batch.input") from exc
        if not paths:
            raise InvalidInput(f"batch input {location!r} contains no Parquet files", field="batch.input")
        files: list[_File] = []
        schema: pa.Schema | None = None
        for file_path in paths:
            try:
                with filesystem.open_input_file(file_path) as handle:
                    metadata = pq.ParquetFile(handle).metadata
                    file_schema = metadata.schema.to_arrow_schema()
                    size = handle.size()
            except (OSError, pa.ArrowInvalid) as exc:
                raise InvalidInput(f"{file_path} is not a readable Parquet file: {exc}", field="batch.input") from exc
            if schema is None:
                schema = file_schema
            elif set(file_schema.names) != set(schema.names):
                raise InvalidInput(
                    f"{file_path} has columns {file_schema.names}, unlike the first input file's {schema.names}",
                    field="batch.input",
                )
            groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            files.append(_File(file_path, size, groups))
        assert schema is not None
        return cls(filesystem, files, schema, location)

    @property
    def rows_total(self) -> int:
        return sum(f.rows for f in self.files)

    def fingerprint(self) -> str:
        """Identifies this input (files, sizes, row counts): a checkpoint only applies to the same input."""
        listing = [(f.path, f.size, f.row_groups) for f in self.files]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()

    def batches(self, batch_rows: int, *, start: int = 0) -> Iterator[tuple[int, int, pa.Table]]:
        """(batch number, first row number, table) of every `batch_rows`-row batch from batch `start` on.

        Batch n always holds input rows [n * batch_rows, (n + 1) * batch_rows), whatever was read
        before, so a resumed job produces the same parts as an uninterrupted one.
        """
        skip = start * batch_rows
        number, first_row = start, skip
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for piece in self._record_batches(skip, batch_rows):
            pending.append(piece)
            pending_rows += piece.num_rows
            while pending_rows >= batch_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                yield number, first_row, table.slice(0, batch_rows)
                rest = table.slice(batch_rows)
                pending = rest.to_batches() if rest.num_rows else []
                pending_rows = rest.num_rows
                number += 1
                first_row += batch_rows
        if pending_rows:
            yield number, first_row, pa.Table.from_batches(pending).combine_chunks()

    def _record_batches(self, skip: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches from input row `skip` on, in the first file's column order and types."""
        for file in self.files:
            if skip >= file.rows:
                skip -= file.rows
                continue
            groups: list[int] = []
            offset = skip
            for index, rows in enumerate(file.row_groups):
                if offset >= rows and not groups:
                    offset -= rows
                    continue
                groups.append(index)
            skip = 0
            with self.filesystem.open_input_file(file.path) as handle:
                # No pre-buffering: it would read every selected row group ahead (the whole file).
                reader = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
                for batch in reader.iter_batches(batch_size=batch_rows, row_groups=groups, use_threads=True):
                    if offset:
                        cut = min(offset, batch.num_rows)
                        batch = batch.slice(cut)
                        offset -= cut
                    if batch.num_rows:
                        yield self._conform(batch, file.path)

    def _conform(self, batch: pa.RecordBatch, path: str) -> pa.RecordBatch:
        if batch.schema.equals(self.schema):
            return batch
        try:
            columns = [batch.column(field.name).cast(field.type) for field in self.schema]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
            raise InvalidInput(
                f"{path}: columns do not match the first input file: {exc}", field="batch.input"
            ) from exc
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)
