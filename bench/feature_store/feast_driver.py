"""The peer's side: drives Feast in its own virtualenv (`bench/.cache/feast-venv`), one operation per
process so each process's peak memory belongs to that operation alone.

Run by the benchmark as `<feast-venv>/bin/python bench/feature_store/feast_driver.py OP CONFIG.json`;
it imports nothing from Mallard (Feast's virtualenv does not have it) and prints one JSON line.

  setup        write feature_store.yaml in the repo directory and `apply` the definitions
  historical   get_historical_features for the entity file -> Parquet (entity file in, result file out)
  materialize  materialize the whole window into the SQLite online store
  online       get_online_features in-process: `requests` calls of `batch` entities x every feature
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _definitions(config: dict[str, Any]) -> list[Any]:
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Float64, Int64

    entity = Entity(name="driver", join_keys=[config["entity_key"]])
    objects: list[Any] = [entity]
    for feature_set in config["sets"]:
        source = FileSource(
            name=f"{feature_set['name']}_source", path=feature_set["path"], timestamp_field=config["timestamp"]
        )
        schema = [Field(name=n, dtype=Int64 if t == "int" else Float64) for n, t in feature_set["features"].items()]
        view = FeatureView(
            name=feature_set["name"],
            entities=[entity],
            ttl=timedelta(days=config["ttl_days"]),
            schema=schema,
            source=source,
            online=True,
        )
        objects.append(view)
    return objects


def _refs(config: dict[str, Any]) -> list[str]:
    return [f"{s['name']}:{f}" for s in config["sets"] for f in s["features"]]


def setup(config: dict[str, Any]) -> dict[str, Any]:
    from feast import FeatureStore

    repo = Path(config["repo"])
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'data' / 'online.db'}\n"
        f"offline_store:\n  type: {config['offline']}\n"
        "entity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply(_definitions(config))
    return {"applied": len(config["sets"])}


def historical(config: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    import pyarrow.parquet as pq
    from feast import FeatureStore

    store = FeatureStore(repo_path=config["repo"])
    refs = _refs(config)
    baseline = _rss_kib()
    started = time.perf_counter()
    entity_df = pd.read_parquet(config["entities"])
    table = store.get_historical_features(entity_df=entity_df, features=refs).to_arrow()
    pq.write_table(table, config["out"])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": table.num_rows, "baseline_rss_kib": baseline}


def materialize(config: dict[str, Any]) -> dict[str, Any]:
    from feast import FeatureStore

    store = FeatureStore(repo_path=config["repo"])
    start = datetime.fromisoformat(config["start"])
    end = datetime.fromisoformat(config["end"])
    baseline = _rss_kib()
    started = time.perf_counter()
    store.materialize(start_date=start, end_date=end)
    return {"seconds": time.perf_counter() - started, "baseline_rss_kib": baseline}


def online(config: dict[str, Any]) -> dict[str, Any]:
    from feast import FeatureStore

    store = FeatureStore(repo_path=config["repo"])
    refs = _refs(config)
    rng = random.Random(config["seed"])
    key, batch = config["entity_key"], config["batch"]

    def one() -> tuple[float, int]:
        rows = [{key: rng.randint(1, config["entity_count"])} for _ in range(batch)]
        started = time.perf_counter()
        result = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        elapsed = time.perf_counter() - started
        return elapsed, sum(v is not None for name, values in result.items() if name != key for v in values)

    for _ in range(config["warmup"]):
        one()
    samples, values = [], 0
    for _ in range(config["requests"]):
        elapsed, found = one()
        samples.append(elapsed)
        values += found
    return {"latencies": samples, "values": values, "expected_values": config["requests"] * batch * len(refs)}


def main() -> None:
    op, config_path = sys.argv[1], sys.argv[2]
    config = json.loads(Path(config_path).read_text())
    import feast

    result = {"setup": setup, "historical": historical, "materialize": materialize, "online": online}[op](config)
    result["feast_version"] = feast.__version__
    result["maxrss_kib_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
