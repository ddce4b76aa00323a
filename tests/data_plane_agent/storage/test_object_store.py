"""The object-store contract, the same for a directory and for S3."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from data_plane_agent.storage import LocalObjectStore, ObjectMissing, ObjectStore, open_store
from data_plane_agent.storage.s3 import S3ObjectStore
from shared.errors import InvalidInput
from tests.data_plane_agent.storage.s3_server import S3Server


def test_put_stream_hashes_and_round_trips(store: ObjectStore, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks
    stored = store.put_stream("contexts/sha256/abc.tar.gz", io.BytesIO(payload))
    assert stored.size == len(payload)
    assert stored.sha256 == hashlib.sha256(payload).hexdigest()
    assert store.exists("contexts/sha256/abc.tar.gz")
    assert store.size("contexts/sha256/abc.tar.gz") == len(payload)
    with store.open_read("contexts/sha256/abc.tar.gz") as handle:
        assert handle.read() == payload
    with store.open_read("contexts/sha256/abc.tar.gz", offset=len(payload) - 10) as handle:
        assert handle.read() == payload[-10:]
    with store.open_read("contexts/sha256/abc.tar.gz", offset=len(payload)) as handle:
        assert handle.read() == b""
    target = tmp_path / "out" / "copy.bin"
    assert store.get_to_file("contexts/sha256/abc.tar.gz", target) == len(payload)
    assert target.read_bytes() == payload


def test_put_file_replaces_and_list_is_sorted_by_prefix(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "log.txt"
    source.write_bytes(b"line 1\n")
    store.put_file("logs/builds/b2.log", source)
    source.write_bytes(b"line 1\nline 2\n")
    stored = store.put_file("logs/builds/b2.log", source)
    assert stored.size == 14
    store.put_stream("logs/builds/b1.log", io.BytesIO(b"x"))
    store.put_stream("artifacts/sha256/ff.tar.gz", io.BytesIO(b"y"))
    assert list(store.list("logs/")) == ["logs/builds/b1.log", "logs/builds/b2.log"]
    assert list(store.list()) == ["artifacts/sha256/ff.tar.gz", "logs/builds/b1.log", "logs/builds/b2.log"]
    with store.open_read("logs/builds/b2.log", offset=7) as handle:
        assert handle.read() == b"line 2\n"


def test_missing_objects_and_delete(store: ObjectStore, tmp_path: Path) -> None:
    assert not store.exists("artifacts/sha256/none.tar.gz")
    with pytest.raises(ObjectMissing):
        store.size("artifacts/sha256/none.tar.gz")
    with pytest.raises(ObjectMissing):
        store.open_read("artifacts/sha256/none.tar.gz")
    with pytest.raises(ObjectMissing):
        store.get_to_file("artifacts/sha256/none.tar.gz", tmp_path / "x")
    store.put_stream("a/b", io.BytesIO(b"1"))
    store.delete("a/b")
    store.delete("a/b")  # idempotent
    assert not store.exists("a/b")
    assert list(store.list("a/")) == []


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b"])
def test_keys_cannot_escape(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.put_stream(key, io.BytesIO(b"x"))


def test_uri_is_the_same_for_every_backend(store: ObjectStore) -> None:
    assert store.uri("artifacts/sha256/ab.tar.gz") == "mallard-store://artifacts/sha256/ab.tar.gz"


def test_local_store_never_shows_half_written_objects(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")

    class Exploding(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise OSError("connection reset")
            return super().read(1024)

    with pytest.raises(OSError):
        store.put_stream("contexts/sha256/x.tar.gz", Exploding(b"z" * 4096))
    assert not store.exists("contexts/sha256/x.tar.gz")
    assert list(store.list()) == []


def test_open_store_picks_the_backend(tmp_path: Path, s3: S3Server) -> None:
    assert isinstance(open_store("", default_root=tmp_path / "d"), LocalObjectStore)
    local = open_store(f"file://{tmp_path / 'e'}", default_root=tmp_path / "d")
    assert isinstance(local, LocalObjectStore) and local.root == tmp_path / "e"
    bucket = s3.create_bucket()
    remote = open_store(f"s3://{bucket}/p", default_root=tmp_path, endpoint_url=s3.endpoint_url, region=s3.region)
    assert isinstance(remote, S3ObjectStore) and remote.bucket == bucket and remote.prefix == "p"
    remote.put_stream("k", io.BytesIO(b"v"))
    assert remote.exists("k")
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_store("gs://bucket", default_root=tmp_path)
