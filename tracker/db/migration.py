"""Alembic, driven from code: ``tracker-manage db sync`` and the tests use this."""

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "tracker.db:migrations")
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def current(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    with sa.create_engine("sqlite://").connect() as connection:
        return ScriptDirectory.from_config(_config(connection)).get_current_head()
