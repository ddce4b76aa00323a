"""Ours: drives Mallard's feature store (`data_plane_agent.features.FeatureEngine`, the facade the
agent runs) in-process, one operation per process like the Feast driver, on an agent-like home with
a local object store and the SQLite online store:

    python bench/feature_store/mallard_driver.py OP CONFIG.json

  setup        apply the definitions (validated against the Parquet files, as `mallard features apply`)
  materialize  backfill every set over the whole window: offline store + online store (sets run
               concurrently, as many at once as the agent runs by default)
  historical   get_historical for the entity file -> Parquet (entity file in, result file out)
  online       get_online in-process: `requests` calls of `batch` keys x every feature (one call per set)

Prints `RESULT {json}` on one line.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

TENANT = "bench"
PROJECT = "bench"


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _engine(config: dict[str, Any]) -> Any:
    from data_plane_agent.features import FeatureEngine, open_online_store
    from data_plane_agent.storage import LocalObjectStore

    home = Path(config["home"])
    online = open_online_store(config.get("online_url", ""), default_path=home / "features" / "online.sqlite")
    return FeatureEngine(home, LocalObjectStore(home / "store"), online, TENANT)


def setup(config: dict[str, Any]) -> dict[str, Any]:
    from mallard.features import Entity, Feature, FeatureSet, ParquetSource

    entity = Entity("driver", keys={config["entity_key"]: "int"})
    definitions: list[Any] = [entity]
    for item in config["sets"]:
        definitions.append(
            FeatureSet(
                item["name"],
                entity=entity,
                source=ParquetSource(item["path"]),
                timestamp=config["timestamp"],
                features=[Feature(name, kind) for name, kind in item["features"].items()],
                ttl=timedelta(days=config["ttl_days"]),
                schedule=None,
                online=True,
            )
        )
    engine = _engine(config)
    applied = engine.apply(definitions, project=PROJECT)
    engine.close()
    return {"applied": len(applied)}


def materialize(config: dict[str, Any]) -> dict[str, Any]:
    """Every set, as the agent runs a queue of `features.materialize` jobs: at most
    MATERIALIZE_CONCURRENCY (its default) at once."""
    from concurrent.futures import ThreadPoolExecutor

    from data_plane_agent.features.service import MATERIALIZE_CONCURRENCY

    engine = _engine(config)
    start, end = datetime.fromisoformat(config["start"]), datetime.fromisoformat(config["end"])
    phases: dict[str, float] = {}  # phase -> seconds, from the engine's progress reports, summed over runs
    lock = threading.Lock()

    def run(name: str) -> Any:
        current: list[Any] = [None, 0.0]

        def progress(phase: str | None, _done: int, _total: int | None) -> None:
            now = time.perf_counter()
            with lock:
                if current[0] is not None:
                    phases[current[0]] = phases.get(current[0], 0.0) + now - current[1]
            current[:] = [phase, now]

        result = engine.materialize(name, project=PROJECT, start=start, end=end, progress=progress)
        progress(None, 0, None)
        return result

    baseline = _rss_kib()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=MATERIALIZE_CONCURRENCY) as pool:
        results = list(pool.map(run, [item["name"] for item in config["sets"]]))
    seconds = time.perf_counter() - started
    engine.close()
    return {
        "phases": phases,
        "concurrency": MATERIALIZE_CONCURRENCY,
        "seconds": seconds,
        "baseline_rss_kib": baseline,
        "source_rows": sum(r.source_rows for r in results),
        "online_rows": sum(r.online_rows for r in results),
    }


def historical(config: dict[str, Any]) -> dict[str, Any]:
    engine = _engine(config)
    refs = [f"{s['name']}:{f}" for s in config["sets"] for f in s["features"]]
    baseline = _rss_kib()
    started = time.perf_counter()
    result = engine.get_historical(Path(config["entities"]), refs, Path(config["out"]), project=PROJECT)
    seconds = time.perf_counter() - started
    engine.close()
    return {"seconds": seconds, "rows": result.rows, "baseline_rss_kib": baseline}


def online(config: dict[str, Any]) -> dict[str, Any]:
    engine = _engine(config)
    rng = random.Random(config["seed"])
    key, batch = config["entity_key"], config["batch"]
    sets = [(s["name"], list(s["features"])) for s in config["sets"]]

    def one() -> tuple[float, int]:
        keys = [{key: rng.randint(1, config["entity_count"])} for _ in range(batch)]
        started = time.perf_counter()
        rows = [engine.get_online(name, keys, features, project=PROJECT) for name, features in sets]
        elapsed = time.perf_counter() - started
        found = sum(
            row[f] is not None
            for (_, features), set_rows in zip(sets, rows, strict=True)
            for row in set_rows
            for f in features
        )
        return elapsed, found

    for _ in range(config["warmup"]):
        one()
    samples, values = [], 0
    for _ in range(config["requests"]):
        elapsed, found = one()
        samples.append(elapsed)
        values += found
    engine.close()
    return {"latencies": samples, "values": values}


def main() -> None:
    op, config_path = sys.argv[1], sys.argv[2]
    config = json.loads(Path(config_path).read_text())
    result = {"setup": setup, "historical": historical, "materialize": materialize, "online": online}[op](config)
    result["maxrss_kib_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
