"""The Alembic migrations build exactly the schema the SQLModel tables describe, both ways."""

from __future__ import annotations

from alembic import command

from control_plane.db import alembic_config


def test_models_and_migrations_agree(database_url: str) -> None:
    # `database_url` is already migrated to head; `check` fails if autogenerate finds a difference.
    command.check(alembic_config(database_url))


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    command.check(cfg)
