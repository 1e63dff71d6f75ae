from tests.schema import schema_differences
from tests.upgrade import upgrade_with_data
from tracker.db import migration


def test_migrations_match_models_on_sqlite(tmp_path):
    assert schema_differences(f"sqlite:///{tmp_path}/m.sqlite") == []


def test_head_is_the_latest_revision(store):
    assert migration.current(store.db.engine) == migration.head()


def test_a_database_main_filled_upgrades_on_sqlite(tmp_path):
    upgraded = upgrade_with_data(f"sqlite:///{tmp_path}/old.sqlite")
    assert len(set(upgraded.node_uuids)) == 2 and None not in upgraded.node_uuids
    assert upgraded.allocations == [("i-1", 1)]
    assert upgraded.outbox_payloads == []  # unversioned, not to be published; the announce resends
