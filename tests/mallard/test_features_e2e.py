"""The feature store end to end through the CLI and `mallard.FeatureStore`, against a live control
plane and agent (real processes on loopback): apply -> materialize -> get-online / get-historical,
bad input refused with nothing registered, and no feature value crossing the agent link."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.helpers.feature_repo import DAYS, DEFINITIONS, DRIVERS, START, rating, trips, write_entities, write_repo
from tests.helpers.servers import wait_for
from tests.helpers.stack import AgentProcess, ControlPlane
from tests.helpers.wired_stack import run_mallard, start_wired_stack

pytestmark = pytest.mark.slow

EVENT_KEYS = {
    "features.materialization": {"job_id", "status", "rows_done", "rows_total", "error_summary", "at"},
    "features.freshness": {"project", "name", "version", "last_materialized_at", "offline_rows", "online_keys", "at"},
}
RESULT_KEYS = {"features.apply": {"applied"}, "features.materialize": {"job_id", "accepted"}}


@dataclass
class Stack:
    cp: ControlPlane
    agent: AgentProcess
    wire: Path
    env: dict[str, str]
    grpc_address: str

    def mallard(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return run_mallard(self.env, *args, check=ok, timeout=300)

    def error(self, *args: str) -> str:
        """The one-line error of a command that must fail (exit code 1), unwrapped."""
        result = self.mallard(*args, ok=False)
        assert result.returncode == 1, f"mallard {' '.join(args)} should fail:\n{result.stdout[-2000:]}"
        return " ".join(result.stderr.split())

    def json(self, *args: str) -> Any:
        return json.loads(self.mallard(*args, "--json").stdout)


@pytest.fixture
def stack(sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    started = start_wired_stack(sqlite_url, tmp_path)
    cp, agent = started.cp, started.agent
    yield Stack(cp, agent, started.wire, started.env, agent.grpc_address)
    if agent.proc is not None:
        agent.proc.terminate()
    cp.stop()


def test_apply_materialize_and_read_back_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    stack.mallard("projects", "create", "rides")
    applied = stack.json("features", "apply", str(repo), "--project", "rides")
    assert [(f["name"], f["version"], f["change"]) for f in applied["feature_sets"]] == [("driver_stats", 1, "created")]
    assert applied["agent"]["state"] == "succeeded", applied["agent"]

    job = stack.json("features", "materialize", "driver_stats")
    assert (job["status"], job["rows_done"]) == ("SUCCEEDED", len(DRIVERS) * DAYS), job

    def fresh() -> dict[str, Any] | None:
        (listed,) = stack.json("features", "list")
        return listed["freshness"] if listed["freshness"]["online_keys"] else None

    freshness = wait_for(fresh, timeout=20, what="freshness on the control plane")
    assert isinstance(freshness, dict)
    assert (freshness["offline_rows"], freshness["online_keys"]) == (len(DRIVERS) * DAYS, len(DRIVERS))

    last = DAYS - 1
    online = stack.json("features", "get-online", "driver_stats", "--key", "driver_id=3", "--key", "driver_id=99")
    assert [(r["driver_id"], r["trips_today"], r["rating"]) for r in online] == [
        (3, trips(3, last), rating(3, last)),
        (99, None, None),
    ]

    # Training/serving consistency: the historical value "now" equals what is served online.
    now = datetime.now(UTC)
    entities = write_entities(tmp_path / "now.parquet", [(d, now) for d in DRIVERS])
    out = tmp_path / "train.parquet"
    result = stack.json(
        "features", "get-historical", "--entities", str(entities), "--features",
        "driver_stats:trips_today,driver_stats:rating", "--out", str(out),
    )  # fmt: skip
    assert result["rows"] == len(DRIVERS)
    historical = pq.read_table(out).to_pylist()
    served = stack.json(
        "features", "get-online", "driver_stats", *[a for d in DRIVERS for a in ("-k", f"driver_id={d}")]
    )
    assert [(r["trips_today"], r["rating"]) for r in historical] == [(r["trips_today"], r["rating"]) for r in served]

    # A training set in the past is point-in-time correct, with every entity row.
    past = write_entities(
        tmp_path / "past.parquet", [(1, START + timedelta(days=1, hours=2)), (2, START - timedelta(hours=1))]
    )
    stack.mallard(
        "features", "get-historical", "--entities", str(past), "--features", "driver_stats:trips_today",
        "--out", str(out),
    )  # fmt: skip
    assert [r["trips_today"] for r in pq.read_table(out).to_pylist()] == [trips(1, 1), None]

    # The same from Python, and over the data plane's gRPC API.
    _python_client(stack, past)
    _grpc_client(stack, served)

    # Bad input: nothing registered, nothing written.
    bad_repo = write_repo(
        tmp_path / "bad", definitions=DEFINITIONS.replace('Feature("rating", "float")', 'Feature("speed", "float")')
    )
    refused = stack.error("features", "apply", str(bad_repo), "--project", "rides")
    assert "'speed' is not in the source" in refused and "nothing was registered" in refused
    retyped = write_repo(
        tmp_path / "retyped",
        definitions=DEFINITIONS.replace('Feature("trips_today", "int")', 'Feature("trips_today", "float")'),
    )
    conflict = stack.error("features", "apply", str(retyped), "--project", "rides")
    assert "changed type from int to float" in conflict and "bump the version to 2" in conflict
    (listed,) = stack.json("features", "list")
    assert listed["fingerprint"] == applied["feature_sets"][0]["fingerprint"]
    assert listed["agent_status"] == "applied"
    no_ts = write_entities(tmp_path / "no_ts.parquet", [(1, None)], with_ts=False)
    missing = stack.error(
        "features", "get-historical", "--entities", str(no_ts), "--features", "driver_stats:rating",
        "--out", str(tmp_path / "never.parquet"),
    )  # fmt: skip
    assert "no timestamp column 'event_timestamp'" in missing
    assert not (tmp_path / "never.parquet").exists()

    _only_metadata_crossed(stack)


def _python_client(stack: Stack, past: Path) -> None:
    import mallard

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith("MALLARD_")})
    try:
        with mallard.FeatureStore() as store:
            rows = store.get_online("driver_stats", [{"driver_id": 2}], features=["rating"])
            assert rows[0]["rating"] == rating(2, DAYS - 1)
            frame = store.get_historical(past, ["driver_stats:trips_today", "driver_stats:rating"])
            assert frame["trips_today"].tolist()[0] == trips(1, 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _grpc_client(stack: Stack, served: list[dict[str, Any]]) -> None:
    import grpc

    from data_plane_agent.grpc_features import from_value, to_value
    from shared.protos.mallard.v1 import features_pb2, features_pb2_grpc

    with stack.cp.client() as api:
        token = api.post("/data-plane/token").json()["token"]
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = features_pb2_grpc.OnlineFeaturesStub(channel)
        request = features_pb2.GetOnlineFeaturesRequest(
            feature_set="driver_stats",
            keys=[features_pb2.EntityKey(columns={"driver_id": to_value(d)}) for d in DRIVERS],
        )
        answer = stub.GetOnlineFeatures(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
    got = [{f: from_value(v) for f, v in zip(answer.features, row.values, strict=True)} for row in answer.rows]
    assert got == [{"trips_today": r["trips_today"], "rating": r["rating"]} for r in served]


def _only_metadata_crossed(stack: Stack) -> None:
    records = [json.loads(line) for line in stack.wire.read_text().splitlines()]
    # Each rating as a whole number token (so 4.1 does not match inside a timestamp like 14.104).
    values = re.compile(
        "|".join(rf"(?<![\d.]){re.escape(str(rating(d, day)))}(?![\d])" for d in DRIVERS for day in range(DAYS))
    )
    command_types: dict[str, str] = {}
    seen: set[str] = set()
    for record in records:
        message = record["message"]
        text = json.dumps(message)
        assert not values.search(text), f"a feature value crossed the link: {text[:500]}"
        if "event" in message and message["event"]["type"].startswith("features."):
            event = message["event"]
            seen.add(event["type"])
            assert set(json.loads(event["payloadJson"])) <= EVENT_KEYS[event["type"]]
        if "command" in message:
            command_types[message["command"]["id"]] = message["command"]["type"]
        if "commandAck" in message and command_types.get(message["commandAck"]["commandId"], "") in RESULT_KEYS:
            ack = message["commandAck"]
            assert set(json.loads(ack.get("resultJson") or "{}")) <= RESULT_KEYS[command_types[ack["commandId"]]]
    assert seen == set(EVENT_KEYS)
