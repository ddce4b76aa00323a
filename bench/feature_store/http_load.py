"""Closed-loop HTTP load generator: one keep-alive connection, one request in flight, each request's
latency from sending it to having read the whole response. Run as a child process pinned to its
own CPU (the server under test gets the other):

    python bench/feature_store/http_load.py CONFIG.json

CONFIG: {"port": int, "path": str, "headers": {...}, "bodies": [json, ...], "warmup": int,
"count_values": "feast" | "mallard"}; the bodies are sent in order, the first `warmup` unmeasured.
A body that is a list is one measured request made of several calls on the connection, in turn.
Prints `RESULT {"latencies": [...], "values": n, "errors": n}`.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

SKIP = ("driver_id", "event_timestamp", "event_timestamps")


def count_values(kind: str, answer: Any) -> int:
    """Feature values that are not null in one response (Feast's or ours)."""
    if kind == "feast":
        names = answer["metadata"]["feature_names"]
        results = answer["results"]
        return sum(v is not None for n, r in zip(names, results, strict=True) if n != "driver_id" for v in r["values"])
    return sum(v is not None for row in answer["rows"] for k, v in row.items() if k not in SKIP)


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    headers = {"Content-Type": "application/json", **config.get("headers", {})}
    connection = http.client.HTTPConnection("127.0.0.1", config["port"], timeout=60)
    latencies: list[float] = []
    values = errors = 0
    for index, request in enumerate(config["bodies"]):
        calls = request if isinstance(request, list) else [request]  # a list: several calls, timed together
        payloads = [json.dumps(body).encode() for body in calls]
        answers: list[tuple[int, bytes]] = []
        started = time.perf_counter()
        for payload in payloads:
            connection.request("POST", config["path"], body=payload, headers=headers)
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        elapsed = time.perf_counter() - started
        if index < config["warmup"]:
            continue
        latencies.append(elapsed)
        for status, data in answers:
            if status != 200:
                errors += 1
                if errors == 1:
                    print(f"HTTP {status}: {data[:500]!r}", file=sys.stderr, flush=True)
                continue
            values += count_values(config["count_values"], json.loads(data))
    connection.close()
    print("RESULT " + json.dumps({"latencies": latencies, "values": values, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
