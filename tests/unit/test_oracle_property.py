"""Property: whatever Nova does, however RabbitMQ delivers it and however the lanes
batch it, usage equals the oracle.

The simulator (tools/cloudsim) is written independently of the tracker from
Nova's behaviour; it drives random lifecycles on random nodes and knows the
usage Nova's resource tracker would report at the end.
"""

import contextlib
import random

import pytest
from cloudsim import Cloud, shuffle_within_window, with_duplicates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_conf
from tests.oracle import apply_all, apply_in_batches, differences, events_of, register
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database

clouds = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31),
        "fmt": st.sampled_from(["versioned", "legacy"]),
        "instances": st.integers(3, 30),
        "hosts": st.integers(2, 6),
        # the largest batch a lane forms; each batch is drawn between 1 and this
        "max_batch": st.sampled_from([1, 2, 7, 50, 500]),
    }
)
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _delivered(cloud_args, window, duplicates):
    cloud = Cloud(cloud_args["seed"], hosts=cloud_args["hosts"], fmt=cloud_args["fmt"])
    rng = random.Random(cloud_args["seed"])
    messages = cloud.run(cloud_args["instances"], rng)
    if window:
        messages = shuffle_within_window(messages, window, rng)
    if duplicates:
        messages = with_duplicates(messages, duplicates, rng)
    return cloud, messages, rng


@contextlib.contextmanager
def _registered_store(cloud):
    # In-memory SQLite: one connection per thread, and this test has one thread.
    conf = make_conf("sqlite://")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    try:
        store = Store(db, conf)
        register(store, cloud)
        yield store
    finally:
        db.dispose()


def _check(cloud_args, window, duplicates):
    cloud, messages, rng = _delivered(cloud_args, window, duplicates)
    max_batch = cloud_args.get("max_batch", 1)
    with _registered_store(cloud) as store:
        outcomes = apply_all(store, messages, lambda: rng.randint(1, max_batch))
        assert differences(store, cloud) == [], dict(outcomes)
        assert store.audit() == []


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
    _check(
        {"seed": 2026, "fmt": fmt, "instances": 120, "hosts": 8, "max_batch": 200},
        window=100,
        duplicates=0.05,
    )


@PROPERTY
@given(cloud=clouds)
def test_any_batching_gives_the_verdicts_of_one_event_at_a_time(cloud):
    """What replay or a lane decides for an event does not depend on its batch."""
    cloud_sim, messages, rng = _delivered(cloud, window=100, duplicates=0.05)
    events = events_of(messages)
    with _registered_store(cloud_sim) as one_by_one, _registered_store(cloud_sim) as batched:
        expected = apply_in_batches(one_by_one, events, lambda: 1)
        got = apply_in_batches(batched, events, lambda: rng.randint(1, cloud["max_batch"]))
        assert got == expected
        assert differences(batched, cloud_sim) == []
