"""Production object store: S3 or any S3-compatible server (endpoint URL), via boto3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from data_plane_agent.storage.base import HashingReader, ObjectMissing, ObjectStore, StoredObject, check_key
from shared.errors import Unavailable

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES


class _EmptyBody:
    def read(self, n: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass

    def __enter__(self) -> _EmptyBody:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class S3ObjectStore(ObjectStore):
    """Objects under `s3://bucket/prefix/`. Credentials come from the usual AWS sources
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles)."""

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )
        self._transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError:
            raise
        except BotoCoreError as exc:
            raise Unavailable(f"object store s3://{self.bucket} unreachable during {what}: {exc}") from exc

    def put_stream(self, key: str, stream: BinaryIO) -> StoredObject:
        reader = HashingReader(stream)
        try:
            self.client.upload_fileobj(reader, self.bucket, self._key(key), Config=self._transfer)
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"could not write {key!r} to s3://{self.bucket}: {exc}") from exc
        return StoredObject(key=key, size=reader.size, sha256=reader.hexdigest)

    def open_read(self, key: str, offset: int = 0) -> BinaryIO:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if offset:
            if offset >= self.size(key):
                return cast(BinaryIO, _EmptyBody())
            kwargs["Range"] = f"bytes={offset}-"
        try:
            body = self._call("read", self.client.get_object, **kwargs)["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise ObjectMissing(f"no object {key!r} in the store") from exc
            raise Unavailable(f"could not read {key!r} from s3://{self.bucket}: {exc}") from exc
        return cast(BinaryIO, body)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any], self._call("head", self.client.head_object, Bucket=self.bucket, Key=self._key(key))
            )
        except ClientError as exc:
            if _missing(exc):
                return None
            raise Unavailable(f"could not stat {key!r} in s3://{self.bucket}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ObjectMissing(f"no object {key!r} in the store")
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        try:
            self._call("delete", self.client.delete_object, Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if not _missing(exc):
                raise Unavailable(f"could not delete {key!r} from s3://{self.bucket}: {exc}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        full = (self.prefix + "/" if self.prefix else "") + prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield str(item["Key"])[strip:]
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"could not list s3://{self.bucket}/{full}: {exc}") from exc

    def close(self) -> None:
        self.client.close()
