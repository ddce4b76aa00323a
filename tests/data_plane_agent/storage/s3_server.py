"""A real S3-compatible server (moto) on a free loopback port, for tests."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.helpers.servers import free_port, skip_or_fail, wait_for

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mallard-test", "AWS_SECRET_ACCESS_KEY": "mallard-test-secret"}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    region: str = "us-east-1"

    def create_bucket_with(self, credentials: dict[str, str]) -> str:
        """Create a bucket using explicit credentials (for callers that do not set the environment)."""
        import boto3

        name = f"mallard-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=name)
        client.close()
        return name

    def create_bucket(self) -> str:
        import boto3

        name = f"mallard-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)
        client.create_bucket(Bucket=name)
        client.close()
        return name


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """`python -m moto.server` on a free port; AWS credentials in the environment must be set
    by the caller (see CREDENTIALS; tests use monkeypatch.setenv)."""
    if importlib.util.find_spec("moto") is None:
        skip_or_fail('moto is not installed (pip install "moto[server]")')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def _up() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True

        wait_for(_up, timeout=20, what="moto S3 server")
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
