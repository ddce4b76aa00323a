"""`POST /v1/lake/query` over real HTTP (uvicorn on 127.0.0.1) with JWTs signed like the control
plane signs them: answers rows, refuses anything but one SELECT naming `sql`, needs a token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from data_plane_agent.api.app import create_app
from data_plane_agent.lake import InferenceLake, LakeQuery
from data_plane_agent.link.client import LinkState
from data_plane_agent.storage import LocalObjectStore
from shared.jwt_tokens import sign
from tests.data_plane_agent.lake.conftest import make_record
from tests.helpers.agent_home import trusting_home
from tests.helpers.servers import free_port, wait_for

TENANT = "ten_lake"


class Api:
    def __init__(self, url: str, private_pem: bytes, lake: InferenceLake) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.private_pem = private_pem
        self.lake = lake

    def headers(self, *, tenant: str = TENANT) -> dict[str, str]:
        token = sign(self.private_pem, subject="usr_1", tenant_id=tenant, role="viewer", ttl_seconds=300)
        return {"Authorization": f"Bearer {token}"}

    def query(self, sql: str, **extra: object) -> httpx.Response:
        return self.http.post("/v1/lake/query", json={"sql": sql, **extra}, headers=self.headers())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    home, private = trusting_home(tmp_path / "home", TENANT)
    store = LocalObjectStore(tmp_path / "store")
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    lake.start()
    app = create_app(home, LinkState(), store=store, lake_query=LakeQuery(store, lake, max_rows=50))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="the data-plane API")
    client = Api(f"http://127.0.0.1:{port}", private, lake)
    yield client
    client.http.close()
    server.should_exit = True
    thread.join(10)
    lake.close()


def test_a_select_answers_columns_and_rows(api: Api) -> None:
    for i in range(3):
        api.lake.record(make_record(i, latency_ms=10.0 * (i + 1)))
    api.lake.flush()
    api.lake.record(make_record(3, status="TIMEOUT"))  # not flushed yet: still answered
    response = api.query(
        "SELECT status, count(*) AS n, max(latency_ms) AS worst FROM predictions GROUP BY status ORDER BY status"
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "columns": [
            {"name": "status", "type": "VARCHAR"},
            {"name": "n", "type": "BIGINT"},
            {"name": "worst", "type": "DOUBLE"},
        ],
        "rows": [["TIMEOUT", 1, 2.0], ["ok", 3, 30.0]],
        "row_count": 2,
        "truncated": False,
    }


def test_rows_are_capped_and_the_answer_says_so(api: Api) -> None:
    assert api.query("SELECT * FROM range(10)", limit=4).json()["rows"] == [[0], [1], [2], [3]]
    capped = api.query("SELECT * FROM range(1000)").json()  # the agent's cap: 50
    assert capped["row_count"] == 50 and capped["truncated"] is True
    assert api.query("SELECT * FROM range(50)").json()["truncated"] is False
    odd = api.query("SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y, DATE '2026-03-04' AS d, [1, 2] AS l")
    assert odd.status_code == 200 and odd.json()["rows"] == [[None, None, "2026-03-04", [1, 2]]]


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("DELETE FROM predictions", "only SELECT"),
        ("CREATE TABLE t AS SELECT 1", "only SELECT"),
        ("COPY (SELECT 1) TO '/tmp/eng-c-leak.csv'", "only SELECT"),
        ("ATTACH '/tmp/eng-c.db' AS other", "only SELECT"),
        ("SET threads = 1", "only SELECT"),
        ("SELECT 1; DROP TABLE predictions", "exactly one statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT nope FROM predictions", "nope"),
        ("SELEC 1", "does not parse"),
    ],
)
def test_anything_but_one_select_is_refused_naming_sql(api: Api, sql: str, says: str) -> None:
    response = api.query(sql)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "sql" and says in error["message"]
    assert not Path("/tmp/eng-c-leak.csv").exists()
    assert api.query("SELECT count(*) FROM predictions").status_code == 200  # still healthy


def test_queries_need_a_token_of_this_tenant(api: Api) -> None:
    body = {"sql": "SELECT 1"}
    assert api.http.post("/v1/lake/query", json=body).status_code == 401
    assert api.http.post("/v1/lake/query", json=body, headers=api.headers(tenant="ten_other")).status_code == 403
    empty = api.http.post("/v1/lake/query", json={"sql": ""}, headers=api.headers())
    assert empty.status_code == 422 and "sql" in json.dumps(empty.json())
