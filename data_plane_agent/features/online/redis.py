"""The production online store: one Redis string per entity key, written by a Lua script, read by MGET.

Key layout: `mallard:<tenant>/<project>/<set>/v<version>:<entity key>` holds
`<event µs>|<created µs>|<JSON object of feature values>`, and `...:__keys` is a set of the entity
keys (for counting). A read of many keys is a single MGET. The write script keeps a row only when
it is newer (event time, then created time), so backfills and incremental runs never overwrite
fresher values; a row carries all of its features, so a read never mixes two versions of a row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import redis

from data_plane_agent.features.online.base import OnlineStore, OnlineTable, decode, expiry_cutoff
from shared.errors import Unavailable

_CHUNK = 5_000

# KEYS[1] = the key set; KEYS[2..] = entity keys. ARGV: per key, event µs, created µs, JSON values.
_WRITE = """
local prefix_len = string.len(KEYS[1]) - 6
local written = 0
for i = 2, #KEYS do
  local off = (i - 2) * 3
  local ts = tonumber(ARGV[off + 1])
  local cts = tonumber(ARGV[off + 2])
  local keep = true
  local cur = redis.call('GET', KEYS[i])
  if cur then
    local a, b = string.match(cur, '^(%-?%d+)|(%-?%d+)|')
    local cur_ts, cur_cts = tonumber(a), tonumber(b)
    if ts < cur_ts or (ts == cur_ts and cts < cur_cts) then keep = false end
  end
  if keep then
    redis.call('SET', KEYS[i], ARGV[off + 1] .. '|' .. ARGV[off + 2] .. '|' .. ARGV[off + 3])
    redis.call('SADD', KEYS[1], string.sub(KEYS[i], prefix_len + 1))
    written = written + 1
  end
end
return written
"""


class RedisOnlineStore(OnlineStore):
    """Values in Redis; see the module docstring for the layout."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(url)
        self._write = self._redis.register_script(_WRITE)

    def _prefix(self, table: OnlineTable) -> str:
        return f"mallard:{table.namespace}:"

    def _keyset(self, table: OnlineTable) -> str:
        # Shares the prefix of the entity keys: the script turns an entity key into its set member
        # by dropping len(key set name) - len("__keys") characters.
        return self._prefix(table) + "__keys"

    def write_batch(self, table: OnlineTable, rows: pa.Table) -> int:
        features = [f for f in table.features if f in rows.column_names]
        prefix = self._prefix(table)
        keyset = self._keyset(table)
        keys = rows.column("entity_key").to_pylist()
        ts = rows.column("event_ts").to_pylist()
        cts = rows.column("created_ts").to_pylist() if "created_ts" in rows.column_names else [None] * len(keys)
        columns = [rows.column(f).to_pylist() for f in features]
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        try:
            pipe = self._redis.pipeline(transaction=False)
            for start in range(0, len(keys), _CHUNK):
                stop = min(start + _CHUNK, len(keys))
                argv: list[Any] = []
                for i in range(start, stop):
                    argv.append(ts[i])
                    argv.append(cts[i] or 0)
                    argv.append(dumps(dict(zip(features, [c[i] for c in columns], strict=True))))
                self._write(keys=[keyset, *(prefix + k for k in keys[start:stop])], args=argv, client=pipe)
            pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} failed during a write: {exc}") from exc
        return len(keys)

    def read(
        self, table: OnlineTable, keys: Sequence[str], features: Sequence[str], *, now: datetime | None = None
    ) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        prefix = self._prefix(table)
        try:
            replies: Any = self._redis.mget([prefix + k for k in keys])
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} failed during a read: {exc}") from exc
        return _decode_replies(table, features, replies, now)

    def read_many(
        self, reads: Sequence[tuple[OnlineTable, Sequence[str], Sequence[str]]], *, now: datetime | None = None
    ) -> list[list[dict[str, Any] | None]]:
        """Every table's MGET in one pipeline: one round trip for several feature sets."""
        wanted = [(table, keys, features) for table, keys, features in reads if keys]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for table, keys, _features in wanted:
                prefix = self._prefix(table)
                pipe.mget([prefix + k for k in keys])
            answers: list[Any] = pipe.execute() if wanted else []
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} failed during a read: {exc}") from exc
        replies = iter(answers)
        return [_decode_replies(table, features, next(replies), now) if keys else [] for table, keys, features in reads]

    def count_keys(self, table: OnlineTable) -> int:
        try:
            return int(self._redis.scard(self._keyset(table)))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} unreachable: {exc}") from exc

    def drop(self, table: OnlineTable) -> None:
        prefix = self._prefix(table)
        try:
            batch: list[bytes] = []
            for key in self._redis.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._redis.delete(*batch)
                    batch = []
            if batch:
                self._redis.delete(*batch)
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} unreachable: {exc}") from exc

    def close(self) -> None:
        self._redis.close()


def _decode_replies(
    table: OnlineTable, features: Sequence[str], replies: Any, now: datetime | None
) -> list[dict[str, Any] | None]:
    types = [table.features[f] for f in features]
    cutoff = expiry_cutoff(table, now)
    out: list[dict[str, Any] | None] = []
    for reply in replies:
        if reply is None:
            out.append(None)
            continue
        stamp, _created, body = reply.split(b"|", 2)
        event_ts = int(stamp)
        if event_ts < cutoff:
            out.append(None)
            continue
        stored = json.loads(body)
        values = {f: decode(t, stored.get(f)) for f, t in zip(features, types, strict=True)}
        values["event_timestamp"] = decode("timestamp", event_ts)
        out.append(values)
    return out
