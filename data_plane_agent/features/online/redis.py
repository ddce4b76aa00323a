"""The production online store: one Redis hash per entity key, written by a Lua script, read by a pipeline.

Key layout: `mallard:<tenant>/<project>/<set>/v<version>:<entity key>` (a hash of feature ->
value, plus `__ts` and `__cts`, epoch microseconds) and `...:__keys` (a set of the entity keys,
for counting). The write script keeps a row only when it is newer (event time, then created time),
so concurrent backfills and incremental runs cannot overwrite fresher values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import redis

from data_plane_agent.features.online.base import OnlineStore, OnlineTable, decode, expired
from shared.errors import Unavailable

NULL = "\x00"
_CHUNK = 2_000

# KEYS[1] = the key set; KEYS[2..] = entity hashes. ARGV = n, feature names..., then per key: ts, cts, values...
_WRITE = """
local n = tonumber(ARGV[1])
local base = n + 1
local stride = n + 2
local written = 0
for i = 2, #KEYS do
  local key = KEYS[i]
  local off = base + (i - 2) * stride
  local ts = tonumber(ARGV[off + 1])
  local cts = tonumber(ARGV[off + 2]) or 0
  local cur = redis.call('HMGET', key, '__ts', '__cts')
  local cur_ts = tonumber(cur[1])
  if cur_ts == nil or ts > cur_ts or (ts == cur_ts and cts >= (tonumber(cur[2]) or 0)) then
    local sets = {'__ts', ARGV[off + 1], '__cts', tostring(cts)}
    local dels = {}
    for j = 1, n do
      local v = ARGV[off + 2 + j]
      if v == '\\0' then
        dels[#dels + 1] = ARGV[1 + j]
      else
        sets[#sets + 1] = ARGV[1 + j]
        sets[#sets + 1] = v
      end
    end
    redis.call('HSET', key, unpack(sets))
    if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
    redis.call('SADD', KEYS[1], string.sub(key, string.len(KEYS[1]) - 5))
    written = written + 1
  end
end
return written
"""


def _encode(type_name: str, values: list[Any]) -> list[str]:
    if type_name == "float":
        return [NULL if v is None else repr(float(v)) for v in values]
    if type_name == "bool":
        return [NULL if v is None else ("1" if v else "0") for v in values]
    return [NULL if v is None else str(v) for v in values]


class RedisOnlineStore(OnlineStore):
    """Values in Redis. `read` of many keys x features is one pipelined round trip of HMGETs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(url)
        self._write = self._redis.register_script(_WRITE)

    def _prefix(self, table: OnlineTable) -> str:
        return f"mallard:{table.namespace}:"

    def _keyset(self, table: OnlineTable) -> str:
        # The script derives an entity key from its hash name by dropping the key set name minus
        # "__keys": both share the prefix, so the member is the entity key string.
        return self._prefix(table) + "__keys"

    def write_batch(self, table: OnlineTable, rows: pa.Table) -> int:
        features = [f for f in table.features if f in rows.column_names]
        prefix = self._prefix(table)
        keyset = self._keyset(table)
        keys = rows.column("entity_key").to_pylist()
        ts = [str(v) for v in rows.column("event_ts").to_pylist()]
        cts_values = rows.column("created_ts").to_pylist() if "created_ts" in rows.column_names else [None] * len(keys)
        cts = ["0" if v is None else str(v) for v in cts_values]
        columns = [_encode(table.features[f], rows.column(f).to_pylist()) for f in features]
        header = [str(len(features)), *features]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for start in range(0, len(keys), _CHUNK):
                stop = min(start + _CHUNK, len(keys))
                argv: list[str] = list(header)
                for i in range(start, stop):
                    argv.append(ts[i])
                    argv.append(cts[i])
                    argv.extend(column[i] for column in columns)
                self._write(keys=[keyset, *(prefix + k for k in keys[start:stop])], args=argv, client=pipe)
            pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} failed during a write: {exc}") from exc
        return len(keys)

    def read(
        self, table: OnlineTable, keys: Sequence[str], features: Sequence[str], *, now: datetime | None = None
    ) -> list[dict[str, Any] | None]:
        prefix = self._prefix(table)
        types = [table.features[f] for f in features]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(prefix + key, ["__ts", *features])
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"online store {self.url} failed during a read: {exc}") from exc
        out: list[dict[str, Any] | None] = []
        for reply in replies:
            event_ts = None if reply[0] is None else int(reply[0])
            if expired(table, event_ts, now):
                out.append(None)
                continue
            values = {f: decode(t, v) for f, t, v in zip(features, types, reply[1:], strict=True)}
            values["event_timestamp"] = decode("timestamp", event_ts)
            out.append(values)
        return out

    def count_keys(self, table: OnlineTable) -> int:
        try:
            return int(self._redis.scard(self._keyset(table)))
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
