from tests.schema import schema_differences
from tracker.db import migration


def test_migrations_match_models_on_sqlite(tmp_path):
    assert schema_differences(f"sqlite:///{tmp_path}/m.sqlite") == []


def test_head_is_the_latest_revision(store):
    assert migration.current(store.db.engine) == migration.head()
