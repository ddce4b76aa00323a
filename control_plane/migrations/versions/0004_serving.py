"""deployments and per-minute serving metrics

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("project_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("runtime", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("logging", sa.Boolean(), nullable=False),
        sa.Column("timeout_ms", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("variations_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("batch_json", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("streaming_json", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("desired", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=True),
        sa.Column("observed_revision", sa.Integer(), nullable=False),
        sa.Column("replicas_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("lag", sa.Integer(), nullable=True),
        sa.Column("reported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agent.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_deployment_tenant_model", ["tenant_id", "model_id"], unique=False)

    op.create_table(
        "deployment_revision",
        sa.Column("deployment_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("spec_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("command_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
        ),
        sa.PrimaryKeyConstraint("deployment_id", "revision"),
    )
    with op.batch_alter_table("deployment_revision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment_revision_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "serving_metric",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("deployment_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("variation", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("build_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("minute", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("p50_ms", sa.Float(), nullable=False),
        sa.Column("p95_ms", sa.Float(), nullable=False),
        sa.Column("p99_ms", sa.Float(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_id", "variation", "build_id", "minute"),
    )
    with op.batch_alter_table("serving_metric", schema=None) as batch_op:
        batch_op.create_index("ix_serving_metric_model_minute", ["model_id", "minute"], unique=False)
        batch_op.create_index(batch_op.f("ix_serving_metric_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("serving_metric", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_serving_metric_tenant_id"))
        batch_op.drop_index("ix_serving_metric_model_minute")

    op.drop_table("serving_metric")
    with op.batch_alter_table("deployment_revision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_revision_tenant_id"))

    op.drop_table("deployment_revision")
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_index("ix_deployment_tenant_model")
        batch_op.drop_index(batch_op.f("ix_deployment_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_deployment_state"))
        batch_op.drop_index(batch_op.f("ix_deployment_agent_id"))

    op.drop_table("deployment")
