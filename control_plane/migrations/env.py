"""Alembic environment: runs migrations against the URL set by control_plane.db.alembic_config."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import control_plane.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from control_plane.db import get_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = get_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
