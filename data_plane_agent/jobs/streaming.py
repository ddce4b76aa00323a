"""Streaming: a Redis Stream consumer group, predictions written to an output stream.

Each input entry is one row: either a field `data` holding a JSON object, or one field per column
(values decoded as JSON when they parse, e.g. "1.5" -> 1.5, else kept as text). Each answer is an
output entry `{"source_id": <input entry id>, "data": <JSON object of the output row>}`, or
`{"source_id", "error"}` for an entry the model refused (it is not retried forever).

Delivery is at-least-once: output entries and the XACK of their inputs are committed together
(MULTI/EXEC) only after the prediction, so a consumer killed at any point leaves its entries
pending; after a restart the consumer (a stable name per deployment) first re-reads its own
pending entries, and entries idle for `CLAIM_IDLE_MS` under another consumer are taken over with
XAUTOCLAIM. A prediction may run twice for an entry; no entry is lost. Lag (entries not yet
delivered to the group) and pending counts are reported in the deployment's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from data_plane_agent.storage import ObjectStore
from shared.errors import InvalidInput, MallardError
from shared.serving import ApplySpec, DeploymentState, StatusPayload

log = logging.getLogger("mallard.agent.jobs")

READ_COUNT = 256  # entries per prediction batch
BLOCK_MS = 1000
CLAIM_IDLE_MS = 60_000
REPORT_SECONDS = 5.0  # identical reports are dropped by the engine; this paces the changing ones

Entry = tuple[str, dict[str, str]]


def _row(fields: dict[str, str]) -> dict[str, Any]:
    if "data" in fields:
        value = json.loads(fields["data"])
        if not isinstance(value, dict):
            raise ValueError("field 'data' must hold a JSON object")
        return value
    row: dict[str, Any] = {}
    for name, text in fields.items():
        try:
            row[name] = json.loads(text)
        except ValueError:
            row[name] = text
    return row


def _retryable(exc: BaseException) -> bool:
    """Worth retrying the same entries later (no replica ready, timeout, Redis hiccup)."""
    if isinstance(exc, MallardError):
        return not exc.non_retryable
    return isinstance(exc, RedisError | ConnectionError | TimeoutError | OSError)


class StreamConsumer:
    """One deployment's consumer. `run()` until `stop`; counts what it processed."""

    def __init__(
        self,
        spec: ApplySpec,
        predict: Callable[[pa.Table], Awaitable[pa.Table]],
        report: Callable[[StatusPayload], None],
        stop: asyncio.Event,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        streaming = spec.get("streaming")
        if not streaming:
            raise InvalidInput("a streaming deployment needs streaming.redis_url and streams", field="streaming")
        for key in ("redis_url", "input_stream", "output_stream", "group"):
            if not streaming.get(key):
                raise InvalidInput(f"streaming.{key} is required", field=f"streaming.{key}")
        self.spec = spec
        self.input = streaming["input_stream"]
        self.output = streaming["output_stream"]
        self.group = streaming["group"]
        self.consumer = f"mallard-{spec['deployment_id']}"
        self.redis = aioredis.from_url(streaming["redis_url"], decode_responses=True)
        self._predict = predict
        self._report = report
        self._stop = stop
        self.processed = 0
        self.failed = 0
        self._last_report = 0.0
        self._next_claim = 0.0
        self.claim_idle_ms = claim_idle_ms

    async def run(self) -> None:
        backoff = 0.2
        own_pending = True  # first drain what this consumer was given before a restart
        try:
            while not self._stop.is_set():
                try:
                    await self._ensure_group()
                    if own_pending:
                        entries = await self._read("0")
                        own_pending = bool(entries)
                    else:
                        entries = await self._claim() or await self._read(">")
                    if entries:
                        await self._process(entries)
                    await self._maybe_report()
                    backoff = 0.2
                except Exception as exc:
                    if not _retryable(exc):
                        raise
                    if "NOGROUP" in str(exc):  # the stream or group was deleted: create them again
                        self._group_ready = False
                    log.warning("stream %s: %s; retrying in %.1fs", self.input, exc, backoff)
                    await self._status(DeploymentState.DEGRADED, f"retrying: {str(exc)[:300]}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), backoff)
                    backoff = min(backoff * 2, 10.0)
                    own_pending = True
        finally:
            with contextlib.suppress(Exception):
                await self._status(DeploymentState.RUNNING, "consumer stopped", force=True)
            await self.redis.aclose()

    _group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.input, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _read(self, start: str) -> list[Entry]:
        block = None if start == "0" else BLOCK_MS
        answer: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.input: start}, count=READ_COUNT, block=block
        )
        entries: list[Entry] = []
        for _stream, items in answer or []:
            # A pending entry deleted from the stream comes back without fields: ack it away.
            gone = [entry_id for entry_id, fields in items if fields is None]
            if gone:
                await self.redis.xack(self.input, self.group, *gone)
            entries.extend((entry_id, fields) for entry_id, fields in items if fields is not None)
        return entries

    async def _claim(self) -> list[Entry]:
        """Entries another (dead) consumer of the group was given and never acknowledged."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + self.claim_idle_ms / 4000
        answer: Any = await self.redis.xautoclaim(
            self.input, self.group, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=READ_COUNT
        )
        return [(entry_id, fields) for entry_id, fields in answer[1] if fields is not None]

    async def _process(self, entries: list[Entry]) -> None:
        rows: list[dict[str, Any]] = []
        good: list[str] = []
        results: list[tuple[str, dict[str, str]]] = []
        for entry_id, fields in entries:
            try:
                rows.append(_row(fields))
                good.append(entry_id)
            except (ValueError, TypeError) as exc:
                results.append((entry_id, {"source_id": entry_id, "error": f"unreadable entry: {exc}"}))
        if rows:
            try:
                answers = await self._predict_rows(rows)
                results.extend((i, {"source_id": i, **a}) for i, a in zip(good, answers, strict=True))
            except Exception as exc:
                if _retryable(exc):
                    raise
                if len(rows) == 1:
                    results.append((good[0], {"source_id": good[0], "error": str(exc)[:1000]}))
                else:  # one bad entry should not fail its neighbours: predict them one by one
                    for entry_id, row in zip(good, rows, strict=True):
                        try:
                            answer = {"source_id": entry_id, **(await self._predict_rows([row]))[0]}
                        except Exception as one_exc:
                            if _retryable(one_exc):
                                raise
                            answer = {"source_id": entry_id, "error": str(one_exc)[:1000]}
                        results.append((entry_id, answer))
        results.sort(key=lambda item: _id_key(item[0]))
        async with self.redis.pipeline(transaction=True) as pipe:
            for _entry_id, fields in results:
                pipe.xadd(self.output, fields)  # type: ignore[arg-type]
            pipe.xack(self.input, self.group, *[entry_id for entry_id, _ in results])
            await pipe.execute()
        self.failed += sum(1 for _, fields in results if "error" in fields)
        self.processed += len(results)

    async def _predict_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        try:
            names = list(dict.fromkeys(name for row in rows for name in row))  # every row's columns
            table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"entries do not form a table: {exc}") from exc
        outputs = await self._predict(table)
        if outputs.num_rows != len(rows):
            raise InvalidInput(f"the model returned {outputs.num_rows} rows for {len(rows)} entries")
        return [{"data": json.dumps(row, default=str)} for row in outputs.to_pylist()]

    async def lag(self) -> tuple[int, int]:
        """(entries not yet delivered to the group, entries delivered but not acknowledged)."""
        for group in await self.redis.xinfo_groups(self.input):
            if group.get("name") == self.group:
                lag = group.get("lag")
                if lag is None:  # Redis cannot tell (deleted entries): count from the last delivered id
                    after = f"({group['last-delivered-id']}"
                    lag = len(await self.redis.xrange(self.input, min=after, count=100_000) or [])
                return int(lag), int(group.get("pending", 0))
        return 0, 0

    async def _maybe_report(self) -> None:
        if time.monotonic() - self._last_report >= REPORT_SECONDS:
            await self._status(DeploymentState.RUNNING, "")

    async def _status(self, state: DeploymentState, message: str, *, force: bool = False) -> None:
        self._last_report = time.monotonic()
        lag, pending = await self.lag()
        text = message or f"stream {self.input}: {self.processed} processed, {pending} pending, lag {lag}"
        self._report(
            StatusPayload(
                deployment_id=self.spec["deployment_id"],
                revision=self.spec.get("revision", 0),
                state=state,
                message=text[:500],
                rows_done=self.processed,
                rows_total=None,
                lag=lag,
            )
        )


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def run_streaming(
    *,
    spec: ApplySpec,
    predict: Callable[[pa.Table], Awaitable[pa.Table]],
    report: Callable[[StatusPayload], None],
    home: Path,
    store: ObjectStore,
    stop: asyncio.Event,
) -> None:
    """Consume until `stop` is set (the consumer's pending entries stay in Redis for the next run)."""
    await StreamConsumer(spec, predict, report, stop).run()
