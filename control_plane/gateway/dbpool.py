"""Run blocking database work off the event loop, retrying SQLite's transient lock errors."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from control_plane.db import session_scope

T = TypeVar("T")


class Database:
    """A small thread pool dedicated to the gateway's transactions."""

    def __init__(self, url: str, *, workers: int = 8) -> None:
        self.url = url
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway-db")

    def _run_sync(self, fn: Callable[[Session], T], retries: int) -> T:
        for attempt in range(retries + 1):
            try:
                with session_scope(self.url) as session:
                    result = fn(session)
                    session.commit()
                    return result
            except OperationalError:
                # SQLite reports a stale read snapshot as "database is locked"; the whole
                # transaction is safe to re-run because every write in it is conditional.
                if attempt == retries:
                    raise
                time.sleep(0.01 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

    async def run(self, fn: Callable[[Session], T], *, retries: int = 5) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run_sync, fn, retries)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
