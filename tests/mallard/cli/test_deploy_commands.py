"""`mallard models deploy|undeploy` and `mallard deployments list|show` against a real API process
(the agent's side is played by events written as the gateway would apply them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from control_plane.db import session_scope
from control_plane.models import Agent, Build, Tenant, utcnow
from control_plane.services import agents, builds
from control_plane.services.join_tokens import create_join_token, redeem_join_token
from tests.helpers.servers import repo_root
from tests.helpers.stack import ControlPlane


class Cli:
    def __init__(self, cp: ControlPlane, tmp_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
        self.env |= {
            "MALLARD_API_URL": cp.api_url,
            "MALLARD_API_KEY": cp.api_key,
            "MALLARD_CONFIG": str(tmp_path / "config.json"),
            "PYTHONPATH": str(repo_root()),
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, code: int = 0) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "mallard", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == code, f"mallard {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Cli, str, str]]:
    cp = ControlPlane(database_url=sqlite_url, home=tmp_path / "cp")
    cp.prepare()
    cp.start_api()
    cp.bootstrap()
    with session_scope(sqlite_url) as session:
        tenant_id = session.exec(select(Tenant)).one().id
        _row, token = create_join_token(
            session, tenant_id=tenant_id, name="edge", ttl_seconds=600, max_ttl_seconds=3600, actor="t"
        )
        agent = redeem_join_token(session, token=token)
        session.commit()
        agent_id = agent.id
    cli = Cli(cp, tmp_path)
    cli("projects", "create", "shop")
    cli("models", "create", "churn", "--project", "shop")
    with session_scope(sqlite_url) as session:
        agent_row = session.get(Agent, agent_id)
        assert agent_row is not None
        build = builds.create_build(
            session, tenant_id=tenant_id, model="churn", agent_id=agent_id, context_digest="sha256:" + "a" * 64,
            builder="local", params={}, tags=[], actor="t", command_ttl_seconds=600,
        )  # fmt: skip
        session.commit()
        finished = {"build_id": build.id, "status": "SUCCEEDED", "artifact_digest": "sha256:" + "b" * 64}
        agents.apply_event(
            session, agent=agent_row, seq=1, type_="build.finished", payload_json=json.dumps(finished),
            occurred_at=utcnow(),
        )  # fmt: skip
        session.commit()
        assert session.get(Build, build.id).status == "SUCCEEDED"  # type: ignore[union-attr]
        build_id = build.id
    yield cli, build_id, agent_id
    cp.stop()


def test_deploy_list_show_undeploy_in_words_and_json(world: tuple[Cli, str, str], sqlite_url: str) -> None:
    cli, build_id, agent_id = world
    out = cli("models", "deploy", "realtime", "--model", "churn", "--build", build_id, "--replicas", "2")
    assert "deployment churn" in out and "revision 1" in out and agent_id in out
    out = cli("models", "deploy", "realtime", "--model", "churn", "--build", build_id, "--variation", "canary",
              "--weight", "20")  # fmt: skip
    assert "revision 2" in out and "'canary'" in out
    listed = cli("deployments", "list")
    assert "churn" in listed and "PENDING" in listed and "canary:20" in listed and "0/3" in listed
    shown = cli("deployments", "show", "churn", "--history")
    assert "variations" in shown and "history" in shown and "canary" in shown
    deployment = json.loads(cli("deployments", "show", "churn", "--json"))
    assert deployment["revision"] == 2 and len(deployment["variations"]) == 2
    # The agent reports the new revision running; `--wait` on a redeploy sees it.
    with session_scope(sqlite_url) as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        ready = [{"variation": "default", "build_id": build_id, "ready": True, "restarts": 0}]
        status = {"deployment_id": deployment["id"], "revision": 3, "state": "RUNNING", "replicas": ready}
        agents.apply_event(
            session, agent=agent, seq=2, type_="deployment.status", payload_json=json.dumps(status),
            occurred_at=utcnow(),
        )  # fmt: skip
        session.commit()
    out = cli("models", "deploy", "realtime", "--model", "churn", "--build", build_id, "--wait", "--wait-timeout", "20")
    assert "RUNNING" in out and "1/3 replicas ready" in out  # a redeploy keeps the variation's 2 replicas
    # Bad values are refused by the CLI or the API, naming what was wrong.
    assert "replicas" in cli("models", "deploy", "realtime", "--model", "churn", "--build", build_id, "--replicas",
                             "40", code=2)  # fmt: skip
    assert "(runtime)" in cli("models", "deploy", "realtime", "--model", "churn", "--build", build_id, "--runtime",
                              "docker", code=1)  # fmt: skip
    assert "not found" in cli("models", "deploy", "batch", "--model", "churn", "--build", "bld_nope", "--input",
                              "/in", "--output", "/out", code=1)  # fmt: skip
    out = cli("models", "undeploy", "churn", "--variation", "canary")
    assert "variation 'canary' removed" in out
    assert "no active deployment with a variation 'canary'" in cli(
        "models", "undeploy", "churn", "--variation", "canary", code=1
    )
    out = cli("models", "undeploy", "churn")
    assert "stopping churn" in out
    assert json.loads(cli("deployments", "list", "--json"))[0]["desired"] == "stopped"
