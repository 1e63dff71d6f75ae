"""Service state, aggregates, over-commit and quota alerts on PostgreSQL and MariaDB: the
SQLite unit tests of tests/unit/test_host_facts.py, run against each server."""

import pytest

from tests.conftest import make_conf
from tests.unit import test_host_facts
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database

pytestmark = pytest.mark.functional


@pytest.fixture
def server_store(server_url):
    conf = make_conf(server_url)
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    yield Store(db, conf)
    db.dispose()


@pytest.mark.parametrize(
    "check",
    [
        test_host_facts.test_a_disabled_service_is_announced_on_every_node_of_its_host_and_counts_nothing,
        test_host_facts.test_aggregates_give_zone_and_membership_and_follow_hosts_in_and_out,
        test_host_facts.test_an_overcommitted_node_raises_one_alert_per_crossing,
        test_host_facts.test_quota_alerts_once_per_crossing_with_per_project_overrides,
    ],
    ids=lambda check: check.__name__.removeprefix("test_")[:40],
)
def test_on_each_server(server_store, check):
    check(server_store)
