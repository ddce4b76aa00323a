"""The agent's feature store as the control plane drives it (features.apply / features.materialize
specs) and as users read it (POST /v1/features/online and /historical, JWT-checked), through the
real app over a real engine; what goes into the outbox is metadata only."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from data_plane_agent.api.app import create_app
from data_plane_agent.features import FeatureEngine, SqliteOnlineStore
from data_plane_agent.features.service import FeatureService
from data_plane_agent.link.client import LinkState
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore
from mallard.features import FeatureSet, load_definitions
from shared import features as contract
from shared.errors import InvalidInput, NotFound
from shared.jwt_tokens import sign
from tests.helpers import feature_repo
from tests.helpers.agent_home import trusting_home
from tests.helpers.feature_repo import DRIVERS, START, rating, trips, write_entities, write_repo

TENANT = "ten_features"
EVENT_KEYS = {
    contract.MATERIALIZATION_EVENT: {"job_id", "status", "rows_done", "rows_total", "error_summary", "at"},
    contract.FRESHNESS_EVENT: {
        "project",
        "name",
        "version",
        "last_materialized_at",
        "offline_rows",
        "online_keys",
        "at",
    },
}


@dataclass
class Plane:
    client: TestClient
    service: FeatureService
    outbox: Outbox
    repo: Path
    private_pem: bytes
    home: AgentHome

    def headers(self, tenant: str = TENANT) -> dict[str, str]:
        token = sign(self.private_pem, subject="usr_1", tenant_id=tenant, role="viewer", ttl_seconds=300)
        return {"Authorization": f"Bearer {token}"}

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(e.type, json.loads(e.payload_json)) for e in self.outbox.unacked(limit=10_000)]

    def apply_spec(self, *definitions: FeatureSet, project: str = "rides") -> dict[str, Any]:
        return {
            "tenant_id": TENANT,
            "definitions": [
                {
                    "project": project,
                    "name": d.name,
                    "version": d.version,
                    "kind": d.kind,
                    "fingerprint": d.fingerprint,
                    "definition": d.to_dict(),
                }
                for d in definitions
            ],
        }


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    home, private = trusting_home(tmp_path / "home", TENANT)
    store = LocalObjectStore(tmp_path / "store")
    engine = FeatureEngine(
        home.root, store, SqliteOnlineStore(tmp_path / "online.sqlite"), TENANT, memory_limit="256MB", threads=1
    )
    outbox = Outbox(tmp_path / "outbox.db")
    service = FeatureService(engine, outbox=outbox, schedule_interval_seconds=3600)
    service.start()
    app = create_app(home, LinkState(), store=store, features=service)
    with TestClient(app) as client:
        yield Plane(client, service, outbox, write_repo(tmp_path / "repo"), private, home)
    service.shutdown()
    engine.close()
    outbox.close()


def driver_stats(plane: Plane) -> FeatureSet:
    (fs,) = [d for d in load_definitions(plane.repo) if isinstance(d, FeatureSet)]
    return fs


def materialized(plane: Plane) -> FeatureSet:
    fs = driver_stats(plane)
    plane.service.apply(plane.apply_spec(fs))
    spec = {"job_id": "mat_1", "project": "rides", "name": fs.name, "version": 1, "start": None, "end": None}
    assert plane.service.materialize(spec) == {"job_id": "mat_1", "accepted": True}
    plane.service.wait("mat_1", timeout=60)
    return fs


def test_apply_then_materialize_reports_progress_and_freshness_as_metadata_only(plane: Plane) -> None:
    fs = driver_stats(plane)
    result = plane.service.apply(plane.apply_spec(fs))
    assert result["applied"] == [
        {
            "project": "rides",
            "name": "driver_stats",
            "version": 1,
            "kind": "feature_set",
            "fingerprint": fs.fingerprint,
            "changed": True,
        }
    ]
    assert plane.service.apply(plane.apply_spec(fs))["applied"][0]["changed"] is False
    materialized(plane)
    # A redelivered command does not run the job twice.
    again = {"job_id": "mat_1", "project": "rides", "name": fs.name, "version": 1, "start": None, "end": None}
    assert plane.service.materialize(again)["accepted"]
    events = plane.events()
    jobs = [p for t, p in events if t == contract.MATERIALIZATION_EVENT]
    assert jobs[0]["status"] == "RUNNING" and jobs[-1]["status"] == "SUCCEEDED"
    assert jobs[-1]["rows_done"] == len(DRIVERS) * feature_repo.DAYS
    assert [j["status"] for j in jobs].count("SUCCEEDED") == 1
    fresh = [p for t, p in events if t == contract.FRESHNESS_EVENT][-1]
    assert (fresh["offline_rows"], fresh["online_keys"]) == (len(DRIVERS) * feature_repo.DAYS, len(DRIVERS))
    assert fresh["last_materialized_at"] is not None
    for type_, payload in events:
        assert set(payload) <= EVENT_KEYS[type_], payload
        values = [v for k, v in payload.items() if k not in ("at", "last_materialized_at", "error_summary")]
        assert rating(3, 2) not in values and trips(3, 2) not in values  # counts and names, no feature value


def test_online_values_are_the_latest_per_key_in_one_call(plane: Plane) -> None:
    materialized(plane)
    body = {"feature_set": "driver_stats", "keys": [{"driver_id": d} for d in (3, 99, 1)]}
    response = plane.client.post("/v1/features/online", json=body, headers=plane.headers())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["feature_set"], answer["version"], answer["project"]) == ("driver_stats", 1, "rides")
    last = feature_repo.DAYS - 1
    rows = answer["rows"]
    assert [r["driver_id"] for r in rows] == [3, 99, 1]
    assert (rows[0]["trips_today"], rows[0]["rating"]) == (trips(3, last), rating(3, last))
    assert rows[1]["trips_today"] is None and rows[1]["rating"] is None  # an unknown key is all nulls
    assert rows[2]["trips_today"] == trips(1, last)
    only = plane.client.post(
        "/v1/features/online", json={**body, "features": ["rating"]}, headers=plane.headers()
    ).json()["rows"]
    assert set(only[0]) == {"driver_id", "rating", "event_timestamp"}


def test_online_refuses_bad_requests_naming_the_field(plane: Plane) -> None:
    materialized(plane)
    cases = [
        ({"feature_set": "driver_stats", "keys": [{"driver": 1}]}, 422, "keys"),
        ({"feature_set": "driver_stats", "keys": [{"driver_id": 1}], "features": ["speed"]}, 422, "features"),
        ({"feature_set": "nope", "keys": [{"driver_id": 1}]}, 404, "feature_set"),
        ({"feature_set": "driver_stats", "keys": []}, 422, None),
    ]
    for body, status, field in cases:
        response = plane.client.post("/v1/features/online", json=body, headers=plane.headers())
        assert response.status_code == status, (body, response.text)
        if field:
            assert response.json()["error"]["field"] == field, response.text
    unauthenticated = plane.client.post("/v1/features/online", json=cases[0][0])
    assert unauthenticated.status_code == 401
    other_tenant = plane.client.post("/v1/features/online", json=cases[0][0], headers=plane.headers("ten_other"))
    assert other_tenant.status_code == 403


def test_online_reads_several_feature_sets_in_one_call(plane: Plane) -> None:
    fs = materialized(plane)
    copy = dataclasses.replace(fs, name="driver_copy")
    plane.service.apply(plane.apply_spec(copy))
    spec = {"job_id": "mat_2", "project": "rides", "name": "driver_copy", "version": 1, "start": None, "end": None}
    plane.service.materialize(spec)
    plane.service.wait("mat_2", timeout=60)
    body = {"keys": [{"driver_id": 3}, {"driver_id": 99}], "features": ["driver_stats:rating", "driver_copy:*"]}
    clash = plane.client.post("/v1/features/online", json=body, headers=plane.headers())
    assert clash.status_code == 422 and clash.json()["error"]["field"] == "features", clash.text
    response = plane.client.post(
        "/v1/features/online", json={**body, "full_feature_names": True}, headers=plane.headers()
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["project"] == "rides"
    assert answer["feature_sets"] == [{"name": "driver_stats", "version": 1}, {"name": "driver_copy", "version": 1}]
    last = feature_repo.DAYS - 1
    known, unknown = answer["rows"]
    assert known["driver_id"] == 3
    assert known["driver_stats__rating"] == known["driver_copy__rating"] == rating(3, last)
    assert known["driver_copy__trips_today"] == trips(3, last)
    assert "driver_stats__trips_today" not in known
    assert set(known["event_timestamps"]) == {"driver_stats", "driver_copy"}
    assert known["event_timestamps"]["driver_stats"] is not None
    assert unknown["driver_id"] == 99 and unknown["driver_copy__rating"] is None
    assert unknown["event_timestamps"] == {"driver_stats": None, "driver_copy": None}
    bad = [
        ({"keys": [{"driver_id": 1}], "features": ["rating"]}, "features"),  # not a set:feature reference
        ({"keys": [{"driver_id": 1}], "features": ["nope:rating"]}, "feature_set"),
        ({"keys": [{"driver_id": 1}]}, "feature_set"),
        ({"keys": [{"driver_id": 1}], "features": ["driver_stats:rating"], "extra": 1}, "extra"),
        ({"keys": "all", "features": ["driver_stats:rating"]}, "keys"),
    ]
    for request, field in bad:
        refused = plane.client.post("/v1/features/online", json=request, headers=plane.headers())
        assert refused.status_code in (404, 422) and refused.json()["error"]["field"] == field, refused.text


def test_historical_is_point_in_time_correct_for_every_entity_row(plane: Plane, tmp_path: Path) -> None:
    materialized(plane)
    rows = [
        (2, START + timedelta(days=1, hours=1)),  # day 1's row
        (2, START + timedelta(hours=-1)),  # before any row: nulls
        (4, START + timedelta(days=5)),  # last row is 3 days old, TTL is 2 days: nulls
        (7, START + timedelta(days=1)),  # unknown driver: nulls
        (1, START + timedelta(days=2)),  # exactly at day 2's event time
    ]
    entities = write_entities(tmp_path / "entities.parquet", rows)
    response = plane.client.post(
        "/v1/features/historical",
        params={"features": "driver_stats:trips_today,driver_stats:rating"},
        content=entities.read_bytes(),
        headers=plane.headers(),
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-rows"] == str(len(rows))
    table = pq.read_table(io.BytesIO(response.content)).to_pylist()
    assert [r["driver_id"] for r in table] == [r[0] for r in rows]
    assert [r["trips_today"] for r in table] == [trips(2, 1), None, None, None, trips(1, 2)]
    assert table[0]["rating"] == rating(2, 1)
    assert not list((plane.service.engine.home / "spool").iterdir())  # nothing left behind


@pytest.mark.parametrize(
    ("rows", "with_ts", "field"),
    [
        ([(1, START)], False, "event_timestamp"),
        ([(None, START), (2, START)], True, "driver_id"),
    ],
)
def test_entity_files_missing_keys_or_timestamps_are_refused(
    plane: Plane, tmp_path: Path, rows: list, with_ts: bool, field: str
) -> None:
    materialized(plane)
    entities = write_entities(tmp_path / "entities.parquet", rows, with_ts=with_ts)
    response = plane.client.post(
        "/v1/features/historical",
        params={"features": "driver_stats:trips_today"},
        content=entities.read_bytes(),
        headers=plane.headers(),
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert not list((plane.service.engine.home / "spool").iterdir())
    garbage = plane.client.post(
        "/v1/features/historical",
        params={"features": "driver_stats:trips_today"},
        content=b"not parquet",
        headers=plane.headers(),
    )
    assert garbage.status_code == 422 and garbage.json()["error"]["field"] == "entities"


def test_bad_definitions_and_unknown_sets_change_nothing(plane: Plane) -> None:
    fs = driver_stats(plane)
    bad = fs.to_dict()
    bad["features"] = [*bad["features"], {"name": "speed", "type": "float", "description": ""}]
    spec = plane.apply_spec(fs)
    spec["definitions"][0]["definition"] = bad
    with pytest.raises(InvalidInput) as err:
        plane.service.apply(spec)
    assert "speed" in err.value.message
    assert plane.service.projects() == [] or plane.service.engine.definitions(project="rides") == []
    with pytest.raises(NotFound):
        plane.service.materialize({"job_id": "m", "project": "rides", "name": "nope", "version": 1})
    assert plane.events() == []


def test_a_schedule_queues_an_incremental_run_when_it_fires(plane: Plane) -> None:
    import dataclasses

    fs = dataclasses.replace(driver_stats(plane), schedule="@hourly")
    plane.service.apply(plane.apply_spec(fs))
    assert (
        plane.service.tick(datetime(2026, 11, 28, 9, 59, tzinfo=UTC), since=datetime(2026, 11, 28, 9, 1, tzinfo=UTC))
        == []
    )
    assert plane.service.tick(datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)) == ["driver_stats:v1"]
    plane.service.wait("schedule:rides/driver_stats/v1", timeout=60)
    fresh = [p for t, p in plane.events() if t == contract.FRESHNESS_EVENT][-1]
    assert fresh["online_keys"] == len(DRIVERS)


def test_grpc_online_features_match_rest_and_check_the_token(plane: Plane) -> None:
    import asyncio

    import grpc

    from data_plane_agent.api.tokens import TokenVerifier
    from data_plane_agent.grpc_features import OnlineFeaturesServicer, from_value, to_value
    from data_plane_agent.grpc_server import grpc_server
    from shared.protos.mallard.v1 import features_pb2, features_pb2_grpc

    materialized(plane)
    keys = [{"driver_id": d} for d in (5, 42)]
    rest = plane.client.post(
        "/v1/features/online", json={"feature_set": "driver_stats", "keys": keys}, headers=plane.headers()
    ).json()["rows"]
    verifier = TokenVerifier(plane.home.jwt_public_key, tenant_id=TENANT)

    async def call() -> None:
        servicer = OnlineFeaturesServicer(plane.service)
        async with (
            grpc_server(verifier=verifier, services=[servicer.add_to_server]) as (
                _server,
                port,
            ),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = features_pb2_grpc.OnlineFeaturesStub(channel)
            request = features_pb2.GetOnlineFeaturesRequest(
                feature_set="driver_stats",
                keys=[features_pb2.EntityKey(columns={"driver_id": to_value(k["driver_id"])}) for k in keys],
            )
            metadata = (("authorization", plane.headers()["Authorization"]),)
            answer = await stub.GetOnlineFeatures(request, metadata=metadata)
            assert list(answer.features) == ["trips_today", "rating"]
            assert (answer.feature_set, answer.version, answer.project) == ("driver_stats", 1, "rides")
            got = [{f: from_value(v) for f, v in zip(answer.features, row.values, strict=True)} for row in answer.rows]
            assert got == [{f: r[f] for f in ("trips_today", "rating")} for r in rest]
            assert [row.found for row in answer.rows] == [True, False]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetOnlineFeatures(request)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            bad = features_pb2.GetOnlineFeaturesRequest(
                feature_set="driver_stats", keys=request.keys, features=["speed"]
            )
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.GetOnlineFeatures(bad, metadata=metadata)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "speed" in (invalid.value.details() or "")

    asyncio.run(call())


def test_a_backfill_covers_its_range_and_a_failing_run_ends_failed_with_a_reason(plane: Plane) -> None:
    fs = driver_stats(plane)
    plane.service.apply(plane.apply_spec(fs))
    day = {"project": "rides", "name": fs.name, "version": 1}
    start, end = START - timedelta(hours=1), START + timedelta(hours=1)  # the first day's rows only
    plane.service.materialize({**day, "job_id": "mat_b", "start": start.isoformat(), "end": end.isoformat()})
    plane.service.wait("mat_b", timeout=60)
    fresh = [p for t, p in plane.events() if t == contract.FRESHNESS_EVENT][-1]
    assert (fresh["offline_rows"], fresh["online_keys"]) == (len(DRIVERS), len(DRIVERS))

    (plane.repo / "data" / "driver_stats.parquet").unlink()
    plane.service.materialize({**day, "job_id": "mat_f"})
    plane.service.wait("mat_f", timeout=60)
    failed = [p for t, p in plane.events() if t == contract.MATERIALIZATION_EVENT and p["job_id"] == "mat_f"][-1]
    assert failed["status"] == "FAILED" and "driver_stats" in failed["error_summary"]
    assert len(failed["error_summary"]) <= contract.ERROR_SUMMARY_MAX


def test_historical_reads_entity_rows_already_in_the_agents_store(plane: Plane, tmp_path: Path) -> None:
    materialized(plane)
    entities = write_entities(tmp_path / "entities.parquet", [(3, START + timedelta(days=1, hours=1))])
    plane.service.engine.store.put_file("inputs/entities.parquet", entities)
    response = plane.client.post(
        "/v1/features/historical",
        params={"features": "driver_stats:*", "entities": "mallard-store://inputs/entities.parquet"},
        headers=plane.headers(),
    )
    assert response.status_code == 200, response.text
    (row,) = pq.read_table(io.BytesIO(response.content)).to_pylist()
    assert (row["trips_today"], row["rating"]) == (trips(3, 1), rating(3, 1))
    missing = plane.client.post(
        "/v1/features/historical",
        params={"features": "driver_stats:*", "entities": "mallard-store://inputs/none.parquet"},
        headers=plane.headers(),
    )
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "entities"
    elsewhere = plane.client.post(
        "/v1/features/historical",
        params={"features": "driver_stats:*", "entities": "/etc/passwd"},
        headers=plane.headers(),
    )
    assert elsewhere.status_code == 422 and elsewhere.json()["error"]["field"] == "entities"


def test_a_job_cut_short_by_an_agent_stop_is_reported_failed_at_the_next_start(plane: Plane, tmp_path: Path) -> None:
    fs = driver_stats(plane)
    plane.service.apply(plane.apply_spec(fs))
    # What a kill -9 between accepting the command and finishing the run leaves behind.
    (plane.service.engine.home / "jobs" / "mat_cut").touch()
    restarted = FeatureService(plane.service.engine, outbox=plane.outbox, schedule_interval_seconds=3600)
    restarted.start()
    try:
        (failed,) = [p for t, p in plane.events() if t == contract.MATERIALIZATION_EVENT and p["job_id"] == "mat_cut"]
        assert failed["status"] == "FAILED" and "run it again" in failed["error_summary"]
        assert not (plane.service.engine.home / "jobs" / "mat_cut").exists()
        with pytest.raises(InvalidInput):
            restarted.materialize({"job_id": "../escape", "project": "rides", "name": fs.name, "version": 1})
    finally:
        restarted.shutdown()
