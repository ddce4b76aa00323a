"""Find, or refuse to silently skip, the real servers tests need (PostgreSQL, Redis)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine that lacks a server; in CI (CI=true) a missing server fails."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may raise while a server is starting
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last error: {last_exc!r}")


POSTGRES_URL_ENV = "MALLARD_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://mallard:mallard@127.0.0.1:5432/mallard_test"


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return DEFAULT_POSTGRES_URL
    except OSError:
        return None


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards."""
    import sqlalchemy as sa

    admin = postgres_admin_url()
    if admin is None:
        skip_or_fail(f"PostgreSQL not reachable; set {POSTGRES_URL_ENV}")
        raise AssertionError("unreachable")
    name = f"mallard_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        skip_or_fail(f"cannot create a PostgreSQL database via {admin}: {exc}")
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from control_plane.db import get_engine

        get_engine.cache_clear()
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed")
        raise AssertionError("unreachable")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def _up() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True

        wait_for(_up, timeout=10, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
