"""Property: whatever Nova does and however RabbitMQ delivers it, usage equals the oracle.

The simulator (tools/cloudsim) is written independently of the tracker from
Nova's behaviour; it drives random lifecycles on random nodes and knows the
usage Nova's resource tracker would report at the end.
"""

import random

import pytest
from cloudsim import Cloud, shuffle_within_window, with_duplicates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_conf
from tests.oracle import apply_all, differences, register
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database

clouds = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31),
        "fmt": st.sampled_from(["versioned", "legacy"]),
        "instances": st.integers(3, 30),
        "hosts": st.integers(2, 6),
    }
)
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(cloud_args, window, duplicates):
    cloud = Cloud(cloud_args["seed"], hosts=cloud_args["hosts"], fmt=cloud_args["fmt"])
    rng = random.Random(cloud_args["seed"])
    messages = cloud.run(cloud_args["instances"], rng)
    if window:
        messages = shuffle_within_window(messages, window, rng)
    if duplicates:
        messages = with_duplicates(messages, duplicates, rng)
    # In-memory SQLite: one connection per thread, and this test has one thread.
    conf = make_conf("sqlite://")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf)
    try:
        register(store, cloud)
        outcomes = apply_all(store, messages)
        assert differences(store, cloud) == [], dict(outcomes)
        assert store.audit() == []
    finally:
        db.dispose()


DELIVERIES = {
    "in_order": (0, 0.0),
    "shuffled_within_100_messages": (100, 0.0),
    "five_percent_duplicates": (0, 0.05),
    "shuffled_and_duplicated": (100, 0.05),
}


@pytest.mark.parametrize("delivery", sorted(DELIVERIES))
@PROPERTY
@given(cloud=clouds)
def test_random_lifecycles_match_the_oracle(cloud, delivery):
    window, duplicates = DELIVERIES[delivery]
    _check(cloud, window, duplicates)


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
def test_a_large_cloud_matches_the_oracle(fmt):
    _check({"seed": 2026, "fmt": fmt, "instances": 120, "hosts": 8}, window=100, duplicates=0.05)
