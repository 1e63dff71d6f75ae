"""Check that the alembic migrations build exactly the models' schema."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tracker.db import migration
from tracker.db.models import Base


def schema_differences(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        migration.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
