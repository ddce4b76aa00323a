"""feature-set definitions and freshness

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feature_set_definition",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("project_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("definition_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("schedule", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("agent_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("agent_error", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=True),
        sa.Column("apply_command_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_materialized_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("offline_rows", sa.Integer(), nullable=True),
        sa.Column("online_keys", sa.Integer(), nullable=True),
        sa.Column("freshness_reported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "project_id", "name", "version"),
    )
    with op.batch_alter_table("feature_set_definition", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feature_set_definition_apply_command_id"), ["apply_command_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_feature_set_definition_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_feature_set_definition_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "feature_materialization",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("feature_set_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("range_start", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("range_end", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("error_summary", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=True),
        sa.Column("command_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agent.id"]),
        sa.ForeignKeyConstraint(["feature_set_id"], ["feature_set_definition.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feature_materialization", schema=None) as batch_op:
        batch_op.create_index("ix_feature_materialization_set_created", ["feature_set_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feature_materialization_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feature_materialization", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_materialization_tenant_id"))
        batch_op.drop_index("ix_feature_materialization_set_created")
    op.drop_table("feature_materialization")
    with op.batch_alter_table("feature_set_definition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feature_set_definition_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_feature_set_definition_project_id"))
        batch_op.drop_index(batch_op.f("ix_feature_set_definition_apply_command_id"))
    op.drop_table("feature_set_definition")
