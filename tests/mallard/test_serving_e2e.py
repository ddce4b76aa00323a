"""Build -> deploy realtime -> predict over REST and gRPC -> rows in the lake -> SQL, through the
CLI against real control-plane and agent processes, with the local and the Docker runtime.

Then the control plane is stopped: predictions keep working (the agent verifies JWTs offline),
the per-minute aggregates queue in the agent's outbox, and they reach the control plane once it
is back. Nothing of a prediction's inputs, outputs or request ids crosses the agent link.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.servers import wait_for
from tests.mallard.test_build_e2e import Stack, _require_docker, _stack

pytestmark = pytest.mark.slow
MARKER_SPEND = 123.456  # an input value that must never cross the agent link


@pytest.fixture
def stack(sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    # Flush (and emit closed minutes of aggregates) every second, so the test waits on minutes, not on flushes.
    agent_env = {"MALLARD_AGENT_LAKE_FLUSH_INTERVAL_SECONDS": "1"}
    built = _stack(sqlite_url, tmp_path, agent_env)
    stack = next(built)
    stack.env["MALLARD_DATA_PLANE_GRPC"] = stack.agent.grpc_address
    yield stack
    next(built, None)


def _queued_metrics(state_db: Path) -> list[dict]:
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT payload_json FROM outbox WHERE type = 'serving.metrics'").fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_build_deploy_predict_query_and_serve_through_an_outage(stack: Stack, runtime: str, tmp_path: Path) -> None:
    if runtime == "docker":
        _require_docker()
    project = tmp_path / "churn"
    stack.mallard("models", "init", str(project), "--name", "churn")
    stack.mallard("projects", "create", "serving")
    stack.mallard("models", "create", "churn", "--project", "serving")
    built = json.loads(
        stack.mallard(
            "models", "build", str(project), "--model", "churn", "--builder", runtime, "--follow", "--json"
        ).stdout
    )
    assert built["status"] == "SUCCEEDED", built

    deploy = ["models", "deploy", "realtime", "--model", "churn", "--build", built["id"], "--runtime", runtime]
    deployed = json.loads(stack.mallard(*deploy, "--wait", "--json").stdout)
    assert (deployed["state"], deployed["observed_revision"], deployed["runtime"]) == ("RUNNING", 1, runtime)
    assert deployed["replicas"] == [{"variation": "default", "build_id": built["id"], "ready": True, "restarts": 0}]

    rest = json.loads(stack.mallard("models", "predict", "churn", "--example", "--request-id", "e2e-rest").stdout)
    assert set(rest["predictions"][0]) == {"churn_probability", "churn"}
    assert (rest["request_id"], rest["variation"], rest["build_id"]) == ("e2e-rest", "default", built["id"])
    row = {"tenure_months": 2.0, "monthly_spend": MARKER_SPEND, "support_calls": 6}
    grpc = json.loads(
        stack.mallard(
            "models", "predict", "churn", "--json", json.dumps(row), "--grpc", "--request-id", "e2e-grpc"
        ).stdout
    )
    assert grpc["request_id"] == "e2e-grpc" and 0.5 < grpc["predictions"][0]["churn_probability"] <= 1.0

    sql = "SELECT request_id, status, variation, build_id, inputs_json FROM predictions WHERE model = 'churn'"
    lake = json.loads(stack.mallard("lake", "query", sql + " ORDER BY request_id", "--json").stdout)
    found = {r[0]: r for r in lake["rows"]}
    assert set(found) == {"e2e-grpc", "e2e-rest"}
    assert all(r[1:4] == ["ok", "default", built["id"]] for r in found.values())
    assert str(MARKER_SPEND) in found["e2e-grpc"][4]

    # The control plane goes away; the data plane keeps answering with a token issued before.
    with stack.cp.client() as api:
        token = api.post("/data-plane/token").json()["token"]
    stack.cp.stop()
    url = f"{stack.agent.data_plane_url}/v1/models/churn/predict"
    headers = {"Authorization": f"Bearer {token}"}
    for i in range(20):
        answer = httpx.post(url, headers=headers, json={"records": [{**row, "support_calls": i}]}, timeout=30)
        assert answer.status_code == 200, answer.text
    last_minute = int(time.time() // 60)
    local = httpx.get(f"{stack.agent.data_plane_url}/v1/deployments", headers=headers, timeout=10).json()
    assert [d["state"] for d in local] == ["RUNNING"]
    # The outage's minute closes and its aggregate waits in the outbox for the control plane.
    state_db = stack.agent.home / "state.db"
    wait_for(
        lambda: any(
            datetime.fromisoformat(m["minute"]).timestamp() // 60 >= last_minute for m in _queued_metrics(state_db)
        ),
        timeout=90,
        interval=0.5,
        what="the outage minute's serving.metrics in the outbox",
    )

    stack.cp.start_api()
    stack.cp.start_gateway()
    with stack.cp.client() as api:

        def caught_up() -> dict | None:
            metrics = api.get("/models/churn/metrics").json()
            return metrics if metrics["count"] == 22 else None

        metrics = wait_for(caught_up, timeout=60, interval=0.5, what="22 predictions in the control plane's metrics")
        assert isinstance(metrics, dict) and metrics["errors"] == 0
        assert all(m["p50_ms"] > 0 and m["build_id"] == built["id"] for m in metrics["minutes"])
    wire = stack.wire.read_text()
    assert "serving.metrics" in wire and "deployment.status" in wire
    for secret in (str(MARKER_SPEND), "e2e-grpc", "e2e-rest", "churn_probability"):
        assert secret not in wire, f"{secret!r} crossed the agent link"

    # Variations through the CLI: 80/20 between default and a canary, plus a shadow that is
    # logged but never answers.
    stack.mallard(*deploy, "--variation", "canary", "--weight", "20", "--wait")
    stack.mallard(*deploy, "--variation", "mirror", "--shadow", "--wait")
    split = json.loads(stack.mallard(*deploy, "--weight", "80", "--wait", "--json").stdout)
    assert {v["name"]: (v["weight"], v["shadow"]) for v in split["variations"]} == {
        "default": (80, False),
        "canary": (20, False),
        "mirror": (0, True),
    }
    served: dict[str, int] = {}
    n = 400
    for i in range(n):
        answer = httpx.post(url, headers={**headers, "X-Request-Id": f"split-{i}"}, json={"records": [row]}, timeout=30)
        assert answer.status_code == 200, answer.text
        served[answer.headers["x-mallard-variation"]] = served.get(answer.headers["x-mallard-variation"], 0) + 1
    assert set(served) == {"default", "canary"}
    assert 40 <= served["canary"] <= 120, served  # Binomial(400, 0.2): mean 80, sd 8
    mirrored = "SELECT count(*) FROM predictions WHERE variation = 'mirror' AND shadow AND request_id LIKE 'split-%'"
    wait_for(
        lambda: json.loads(stack.mallard("lake", "query", mirrored, "--json").stdout)["rows"] == [[n]],
        timeout=60,
        what="every request mirrored to the shadow and logged",
    )

    undeployed = json.loads(stack.mallard("models", "undeploy", "churn", "--json").stdout)
    assert [d["desired"] for d in undeployed] == ["stopped"]
    wait_for(
        lambda: json.loads(stack.mallard("deployments", "list", "--all", "--json").stdout)[0]["state"] == "STOPPED",
        timeout=60,
        what="STOPPED",
    )
    gone = httpx.post(url, headers=headers, json={"records": [row]}, timeout=30)
    assert gone.status_code == 404 and gone.json()["error"]["field"] == "model"

    # The same build as a batch job over a Parquet file in the data plane.
    rows = 1000
    inputs = tmp_path / "customers.parquet"
    columns = {"tenure_months": [float(i % 72) for i in range(rows)], "monthly_spend": [50.0 + i % 40 for i in
               range(rows)], "support_calls": [i % 5 for i in range(rows)]}  # fmt: skip
    pq.write_table(pa.table(columns), inputs)
    batch = ["models", "deploy", "batch", "--model", "churn", "--build", built["id"], "--runtime", runtime]
    scored = tmp_path / "scored"
    job = json.loads(stack.mallard(*batch, "--input", str(inputs), "--output", str(scored), "--wait", "--json").stdout)
    assert (job["kind"], job["state"], job["rows_done"]) == ("batch", "SUCCEEDED", rows), job
    output = pq.read_table(scored)
    assert output.num_rows == rows and "churn_probability" in output.column_names
