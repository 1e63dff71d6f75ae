"""tracker-manage replay: batches of events, the worker's verdicts, poison by line number."""

import json
import random

import pytest
from cloudsim import Cloud, with_duplicates

from tests.conftest import make_conf
from tests.oracle import differences, register
from tracker import replay
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database


def _replayed(tmp_path, name, cloud, lines, batch_size):
    conf = make_conf(f"sqlite:///{tmp_path}/{name}.sqlite")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf)
    register(store, cloud)
    report = replay.replay(lines, store, 1 << 20, batch_size=batch_size)
    problems = differences(store, cloud)
    db.dispose()
    return report, problems


@pytest.mark.parametrize("batch_size", [7, 500])
def test_replay_in_batches_gives_the_counters_of_one_event_at_a_time(tmp_path, batch_size):
    rng = random.Random(11)
    cloud = Cloud(11, hosts=4)
    messages = with_duplicates(cloud.run(25, rng), 0.05, rng)
    lines = [json.dumps(message["body"]) for message in messages]
    lines[10:10] = ["{not json", ""]
    one, _ = _replayed(tmp_path, "one", cloud, lines, batch_size=1)
    batched, problems = _replayed(tmp_path, "batched", cloud, lines, batch_size=batch_size)
    assert problems == []
    assert batched.metrics.snapshot() == one.metrics.snapshot()
    assert [number for number, _reason in batched.poison] == [11]
