"""Invariants that must hold under concurrent requests, not only one at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import text

from control_plane.db import get_engine
from tests.control_plane.api.conftest import auth, ok


def _together(calls: list[Callable[[], int]]) -> list[int]:
    """Run the calls in threads released at the same instant; return their status codes, sorted."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = []

    def run(call: Callable[[], int]) -> None:
        barrier.wait(timeout=10)
        statuses.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(statuses)


def test_concurrent_bootstraps_create_exactly_one_tenant(client: TestClient, database_url: str) -> None:
    def bootstrap(i: int) -> Callable[[], int]:
        return lambda: (
            client.post("/api/v1/bootstrap", json={"tenant": f"t{i}", "email": f"root{i}@x.example"}).status_code
        )

    assert _together([bootstrap(i) for i in range(4)]) == [201, 409, 409, 409]
    with get_engine(database_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tenant")).scalar() == 1


def test_two_admins_stepping_down_at_once_leave_one_admin(client: TestClient, database_url: str) -> None:
    first = ok(client.post("/api/v1/bootstrap", json={"tenant": "t", "email": "one@x.example"}), 201)
    one = auth(first["api_key"]["key"])
    second = ok(client.post("/api/v1/users", headers=one, json={"email": "two@x.example", "role": "admin"}), 201)
    two = auth(
        ok(client.post("/api/v1/api-keys", headers=one, json={"name": "k", "user_id": second["id"]}), 201)["key"]
    )

    def step_down(headers: dict[str, str], user_id: str) -> Callable[[], int]:
        return lambda: client.patch(f"/api/v1/users/{user_id}", headers=headers, json={"role": "member"}).status_code

    assert _together([step_down(one, first["user"]["id"]), step_down(two, second["id"])]) == [200, 409]
    with get_engine(database_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM membership WHERE role = 'admin'")).scalar() == 1
