"""The one object-store interface. Contexts, artifacts and build logs live behind it.

Keys are relative POSIX paths (`artifacts/sha256/<hex>.tar.gz`); every backend stores the same
keys, so a `mallard-store://<key>` URI means the same object whatever the store is.
"""

from __future__ import annotations

import hashlib
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.errors import InvalidInput, NotFound

URI_SCHEME = "mallard-store://"
CHUNK = 1024 * 1024


class ObjectMissing(NotFound):
    """No object is stored under this key."""

    code = "object_missing"


@dataclass(frozen=True)
class StoredObject:
    """What a put wrote: the key, its size in bytes and the sha256 of its content (hex)."""

    key: str
    size: int
    sha256: str


def check_key(key: str) -> str:
    """A key is a normalised relative path: no leading '/', no '..', no empty parts."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidInput(f"invalid object key {key!r}", field="key")
    if posixpath.normpath(key) != key or key.split("/")[0] == "..":
        raise InvalidInput(f"invalid object key {key!r}", field="key")
    return key


class HashingReader:
    """Wraps a binary stream and hashes (and counts) what is read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ObjectStore(ABC):
    """A flat key space of immutable-by-convention blobs (logs are re-put while they grow)."""

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO) -> StoredObject:
        """Store everything `stream` yields under `key` (replacing it), hashing on the way."""

    def put_file(self, key: str, path: Path) -> StoredObject:
        """Store the file at `path` under `key` (replacing it)."""
        with open(path, "rb") as handle:
            return self.put_stream(key, handle)

    @abstractmethod
    def open_read(self, key: str, offset: int = 0) -> BinaryIO:
        """A readable stream of the object from byte `offset`; the caller closes it."""

    def get_to_file(self, key: str, path: Path) -> int:
        """Copy the object to `path`; returns its size."""
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with self.open_read(key) as source, open(path, "wb") as target:
            while chunk := source.read(CHUNK):
                target.write(chunk)
                size += len(chunk)
        return size

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; ObjectMissing if absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix`, in lexicographic order."""

    def uri(self, key: str) -> str:
        """The data-plane URI of a key, the same for every backend."""
        return URI_SCHEME + check_key(key)

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections (optional)."""
