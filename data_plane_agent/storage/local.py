"""The embedded default: objects are files under a directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from data_plane_agent.storage.base import CHUNK, HashingReader, ObjectMissing, ObjectStore, StoredObject, check_key


class LocalObjectStore(ObjectStore):
    """Objects are files under `root`; a put writes a temporary file and renames it into place,
    so readers never see half an object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextmanager
    def writing(self, key: str) -> Iterator[BinaryIO]:
        """A temporary file (`.put-*`) next to `key`'s object to write it into; when the block ends
        cleanly the file is synced and renamed into place, otherwise removed."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".put-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_stream(self, key: str, stream: BinaryIO) -> StoredObject:
        reader = HashingReader(stream)
        with self.writing(key) as out:
            while chunk := reader.read(CHUNK):
                out.write(chunk)
        return StoredObject(key=key, size=reader.size, sha256=reader.hexdigest)

    def open_read(self, key: str, offset: int = 0) -> BinaryIO:
        try:
            handle = open(self.path(key), "rb")  # noqa: SIM115  (returned to the caller)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"no object {key!r} in the store") from exc
        if offset:
            handle.seek(offset)
        return handle

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ObjectMissing(f"no object {key!r} in the store") from exc

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".put-"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)
