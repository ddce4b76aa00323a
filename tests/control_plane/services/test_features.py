"""Feature sets on the control plane: versioned definitions sent to the agent, incompatible changes
refused with a 409 that says to bump the version, materializations and freshness folded in from
the agent's events, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, FeatureSetDefinition, Project
from control_plane.services import commands, features
from control_plane.services.join_tokens import create_join_token, redeem_join_token
from mallard.features import Aggregation, Entity, RedisStreamSource, StreamFeatureSet
from shared import features as contract
from shared.errors import Conflict, InvalidInput, NotFound
from tests.control_plane.services.test_builds import event, world
from tests.helpers.feature_defs import batch_definition


def table_rows(session: Session) -> dict[str, list[str]]:
    """Every row of every table, to prove a refused apply stored and sent nothing."""
    return {
        t.name: sorted(repr(tuple(r)) for r in session.connection().execute(sa_select(t)))
        for t in SQLModel.metadata.sorted_tables
        if t.name != "apikey"
    }


def apply(session: Session, tenant_id: str, *entries: dict, agent_id: str | None = None) -> list[tuple[str, str]]:
    results, _command = features.apply_definitions(
        session,
        tenant_id=tenant_id,
        project="churn",
        definitions=list(entries),
        agent_id=agent_id,
        actor="user:u",
        command_ttl_seconds=600,
    )
    session.commit()
    return [(f"{row.name}:v{row.version}", change) for row, change in results]


def sent(session: Session, agent: Agent, prefix: str = "features.") -> list[tuple[str, dict]]:
    rows = session.exec(
        select(AgentCommand)
        .where(col(AgentCommand.agent_id) == agent.id)
        .where(col(AgentCommand.type).startswith(prefix))
        .order_by(col(AgentCommand.created_at))
    )
    return [(c.type, json.loads(c.spec_json)) for c in rows]


def test_apply_registers_and_sends_definitions_and_reapplying_changes_nothing(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        entry = batch_definition("driver_stats")
        assert apply(session, tenant_id, entry) == [("driver_stats:v1", "created")]
        assert apply(session, tenant_id, entry) == [("driver_stats:v1", "unchanged")]
        specs = sent(session, agent)
        assert [t for t, _ in specs] == [contract.APPLY_COMMAND] * 2
        spec = specs[0][1]
        assert spec["tenant_id"] == tenant_id
        (sent_def,) = spec["definitions"]
        assert (sent_def["project"], sent_def["name"], sent_def["version"]) == ("churn", "driver_stats", 1)
        assert sent_def["definition"] == entry["definition"]
        row = features.get_feature_set(session, tenant_id=tenant_id, feature_set="driver_stats")
        assert row.fingerprint.startswith("sha256:") and row.schedule == "@hourly" and row.agent_id == agent.id


def test_compatible_changes_update_the_version_in_place(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, _agent = world(session)
        apply(session, tenant_id, batch_definition("driver_stats"))
        wider = batch_definition(
            "driver_stats",
            features={"trips_today": "int", "rating": "float", "acceptance": "float"},
            schedule="@daily",
            description="now with acceptance",
        )
        assert apply(session, tenant_id, wider) == [("driver_stats:v1", "updated")]
        row = features.get_feature_set(session, tenant_id=tenant_id, feature_set="driver_stats")
        assert row.schedule == "@daily"
        assert [f["name"] for f in json.loads(row.definition_json)["features"]] == [
            "trips_today",
            "rating",
            "acceptance",
        ]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"features": {"trips_today": "int"}}, "'rating' was removed"),
        ({"features": {"trips_today": "str", "rating": "float"}}, "changed type from int to str"),
        ({"keys": {"driver_id": "str"}}, "entity keys changed"),
        ({"timestamp": "updated_at"}, "timestamp column changed"),
    ],
)
def test_incompatible_change_is_a_conflict_asking_for_a_new_version(database_url: str, change: dict, said: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        apply(session, tenant_id, batch_definition("driver_stats"))
        before = table_rows(session)
        with pytest.raises(Conflict) as err:
            apply(session, tenant_id, batch_definition("driver_stats", **change), batch_definition("other"))
        session.rollback()
        assert said in err.value.message and "bump the version to 2" in err.value.message
        assert table_rows(session) == before  # nothing registered, nothing sent: not even "other"
        # The new version registers beside the old one, which stays readable.
        assert apply(session, tenant_id, batch_definition("driver_stats", version=2, **change)) == [
            ("driver_stats:v2", "created")
        ]
        versions = features.feature_set_versions(session, tenant_id=tenant_id, feature_set="driver_stats")
        assert [v.version for v in versions] == [1, 2]
        assert features.get_feature_set(session, tenant_id=tenant_id, feature_set="driver_stats").version == 2
        v1 = features.get_feature_set(session, tenant_id=tenant_id, feature_set="driver_stats", version=1)
        assert [f["name"] for f in json.loads(v1.definition_json)["features"]] == ["trips_today", "rating"]
        assert len(sent(session, agent)) == 2


def test_malformed_definitions_are_refused_naming_the_entry(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, _agent = world(session)
        good = batch_definition("driver_stats")
        no_features = {**good, "definition": {**good["definition"], "features": []}}
        bad_schedule = {**good, "definition": {**good["definition"], "schedule": "every tuesday"}}
        wrong_name = {**good, "name": "other"}
        for entry, said in [
            (no_features, "declares no features"),
            (bad_schedule, "schedule"),
            (wrong_name, "definition.name is 'driver_stats' but the entry says 'other'"),
        ]:
            with pytest.raises(InvalidInput) as err:
                apply(session, tenant_id, entry)
            session.rollback()
            assert err.value.field == "definitions" and said in err.value.message, err.value.message
        assert features.list_feature_sets(session, tenant_id=tenant_id) == []
        with pytest.raises(NotFound):
            apply_to_project(session, tenant_id, "nowhere", good)


def apply_to_project(session: Session, tenant_id: str, project: str, entry: dict) -> None:
    features.apply_definitions(
        session,
        tenant_id=tenant_id,
        project=project,
        definitions=[entry],
        agent_id=None,
        actor="u",
        command_ttl_seconds=60,
    )


def test_the_agent_is_the_only_one_or_must_be_named(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        _row, token = create_join_token(
            session, tenant_id=tenant_id, name="second", ttl_seconds=600, max_ttl_seconds=3600, actor="t"
        )
        second = redeem_join_token(session, token=token)
        session.commit()
        with pytest.raises(InvalidInput) as err:
            apply(session, tenant_id, batch_definition("driver_stats"))
        session.rollback()
        assert err.value.field == "agent_id"
        apply(session, tenant_id, batch_definition("driver_stats"), agent_id=second.id)
        # Later applies in the project go to the agent that holds its feature data.
        apply(session, tenant_id, batch_definition("trips"))
        assert [t for t, _ in sent(session, second)] == [contract.APPLY_COMMAND] * 2
        assert sent(session, agent) == []


def test_materialize_queues_a_job_and_events_report_progress_and_freshness(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        apply(session, tenant_id, batch_definition("driver_stats"))
        start = datetime(2026, 11, 1, tzinfo=UTC)
        job = features.materialize(
            session,
            tenant_id=tenant_id,
            feature_set="driver_stats",
            project=None,
            version=None,
            start=start,
            end=start + timedelta(days=7),
            actor="user:u",
            command_ttl_seconds=600,
        )
        session.commit()
        _, spec = sent(session, agent, contract.MATERIALIZE_COMMAND)[0]
        assert spec == {
            "job_id": job.id,
            "tenant_id": tenant_id,
            "project": "churn",
            "name": "driver_stats",
            "version": 1,
            "start": "2026-11-01T00:00:00Z",
            "end": "2026-11-08T00:00:00Z",
        }
        progress = {"job_id": job.id, "status": "RUNNING", "rows_done": 500, "rows_total": 1000}
        assert event(session, agent, 1, contract.MATERIALIZATION_EVENT, progress)
        session.refresh(job)
        assert (job.status, job.rows_done, job.rows_total) == ("RUNNING", 500, 1000)
        done = {"job_id": job.id, "status": "SUCCEEDED", "rows_done": 1000, "at": "2026-11-28T01:00:00Z"}
        assert event(session, agent, 2, contract.MATERIALIZATION_EVENT, done)
        freshness = {
            "project": "churn",
            "name": "driver_stats",
            "version": 1,
            "last_materialized_at": "2026-11-28T01:00:00Z",
            "offline_rows": 1000,
            "online_keys": 40,
            "at": "2026-11-28T01:00:01Z",
        }
        assert event(session, agent, 3, contract.FRESHNESS_EVENT, freshness)
        # A late RUNNING report does not reopen a finished job.
        assert event(session, agent, 4, contract.MATERIALIZATION_EVENT, progress)
        session.refresh(job)
        assert (job.status, job.rows_done, job.finished_at is not None) == ("SUCCEEDED", 1000, True)
        row = features.get_feature_set(session, tenant_id=tenant_id, feature_set="driver_stats")
        view = features.feature_set_view(row)["freshness"]
        assert view["last_materialized_at"] == "2026-11-28T01:00:00Z"
        assert (view["offline_rows"], view["online_keys"]) == (1000, 40)


def test_bad_or_foreign_events_change_nothing_and_a_refused_command_fails_the_job(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        apply(session, tenant_id, batch_definition("driver_stats"))
        job = features.materialize(
            session,
            tenant_id=tenant_id,
            feature_set="driver_stats",
            project=None,
            version=None,
            start=None,
            end=None,
            actor="u",
            command_ttl_seconds=600,
        )
        session.commit()
        _row, token = create_join_token(
            session, tenant_id=tenant_id, name="other", ttl_seconds=600, max_ttl_seconds=3600, actor="t"
        )
        other = redeem_join_token(session, token=token)
        session.commit()
        assert event(session, other, 1, contract.MATERIALIZATION_EVENT, {"job_id": job.id, "status": "SUCCEEDED"})
        assert event(session, agent, 1, contract.MATERIALIZATION_EVENT, {"job_id": job.id, "status": "NOPE"})
        assert event(session, agent, 2, contract.MATERIALIZATION_EVENT, {"job_id": job.id, "rows_done": -5})
        bad_fresh = {"project": "churn", "name": "driver_stats", "version": 1, "offline_rows": "many"}
        assert event(session, agent, 3, contract.FRESHNESS_EVENT, bad_fresh)
        session.refresh(job)
        assert job.status == "QUEUED"
        row = features.get_feature_set(session, tenant_id=tenant_id, feature_set="driver_stats")
        assert row.offline_rows is None
        assert commands.record_ack(
            session, agent_id=agent.id, command_id=str(job.command_id), ok=False, result_json="", error="no such set"
        )
        session.commit()
        session.refresh(job)
        assert (job.status, job.error_summary) == ("FAILED", "no such set")


def test_materialize_checks_its_range_and_refuses_stream_sets(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, _agent = world(session)
        stream = StreamFeatureSet(
            "card_spend",
            entity=Entity("card", keys={"card_id": "int"}),
            stream=RedisStreamSource("payments"),
            timestamp="ts",
            aggregations=[Aggregation("amount", "sum", window=timedelta(hours=1))],
        )
        apply(
            session,
            tenant_id,
            batch_definition("driver_stats"),
            {"name": "card_spend", "version": 1, "kind": stream.kind, "definition": stream.to_dict()},
        )
        now = datetime.now(UTC)
        kwargs: dict = dict(tenant_id=tenant_id, project=None, version=None, actor="u", command_ttl_seconds=60)
        with pytest.raises(InvalidInput) as err:
            features.materialize(session, feature_set="driver_stats", start=now, end=now - timedelta(hours=1), **kwargs)
        assert err.value.field == "end"
        with pytest.raises(InvalidInput) as err:
            features.materialize(session, feature_set="driver_stats", start=None, end=now, **kwargs)
        assert err.value.field == "start"
        with pytest.raises(Conflict) as conflict:
            features.materialize(session, feature_set="card_spend", start=None, end=None, **kwargs)
        assert "stream" in conflict.value.message
        with pytest.raises(NotFound) as missing:
            features.materialize(session, feature_set="driver_stats", start=None, end=None, **{**kwargs, "version": 9})
        assert missing.value.field == "version"
        project = session.exec(select(Project).where(col(Project.tenant_id) == tenant_id)).one()
        assert session.exec(
            select(FeatureSetDefinition).where(col(FeatureSetDefinition.project_id) == project.id)
        ).all()


def test_the_agents_answer_to_an_apply_is_recorded_on_each_definition(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)

        def status(name: str) -> tuple[str, str | None]:
            row = features.get_feature_set(session, tenant_id=tenant_id, feature_set=name)
            session.refresh(row)
            return row.agent_status, row.agent_error

        def ack(ok: bool, error: str = "") -> None:
            (command,) = session.exec(
                select(AgentCommand)
                .where(col(AgentCommand.agent_id) == agent.id)
                .where(col(AgentCommand.state) == "pending")
            ).all()
            assert commands.record_ack(
                session, agent_id=agent.id, command_id=command.id, ok=ok, result_json="", error=error
            )
            session.commit()

        apply(session, tenant_id, batch_definition("driver_stats"))
        assert status("driver_stats") == ("pending", None)
        ack(True)
        assert status("driver_stats") == ("applied", None)
        apply(session, tenant_id, batch_definition("driver_stats"), batch_definition("trips"))
        ack(False, "trips: feature column 'rating' is not in the source")
        assert status("trips") == ("refused", "trips: feature column 'rating' is not in the source")
        assert status("driver_stats") == ("applied", None)  # unchanged, still held by the agent
        view = features.feature_set_view(features.get_feature_set(session, tenant_id=tenant_id, feature_set="trips"))
        assert view["agent_status"] == "refused" and "rating" in view["agent_error"]
