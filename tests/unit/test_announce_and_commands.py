"""The periodic re-announce, ``tracker-manage announce`` and ``quota``, ``tracker-status
--projects``, and a replayed service notification (SQLite, kombu memory://)."""

import json

import pytest
import sqlalchemy as sa

from tests import factories
from tracker import replay
from tracker.bus.announce import Announcer
from tracker.client import snapshot
from tracker.cmd import manage, status
from tracker.db.api import NodeInventory


def _register(store, count):
    for i in range(count):
        store.set_node(f"cmp{i:02d}", f"cmp{i:02d}", NodeInventory(vcpus=8, memory_mb=8192, local_gb=100))


def test_every_node_is_announced_once_per_interval_in_even_slices(store):
    _register(store, 30)
    now = [0.0]
    announcer = Announcer(store, interval=6.0, clock=lambda: now[0])
    batches = []
    for _second in range(12):  # two intervals, woken every second
        announcer.step(lambda payloads: batches.append([p["host"] for p in payloads]))
        assert announcer.step(batches.append) == 0  # not due again before its step
        now[0] += 1.0
    assert len(batches) == 12
    first, second = batches[:6], batches[6:]
    assert sorted(h for batch in first for h in batch) == [f"cmp{i:02d}" for i in range(30)]
    assert first == second
    assert {len(batch) for batch in first} == {5}


def test_an_interval_of_zero_announces_nothing(store):
    _register(store, 2)
    announcer = Announcer(store, interval=0.0)
    assert announcer.seconds_until_due() is None
    assert announcer.step(lambda payloads: None) == 0


def _config(tmp_path, conf, extra=""):
    path = tmp_path / "tracker.conf"
    path.write_text(f"[database]\nconnection = {conf.database.connection}\n{extra}")
    return ["--config-file", str(path)]


def test_quota_set_then_status_projects_shows_usage_against_limits(store, conf, tmp_path, capsys):
    args = _config(tmp_path, conf, "[quota]\nvcpus = 100\n")
    store.apply(factories.event("create.end", 1))
    assert manage.main([*args, "quota", "set", "proj-1", "--instances", "0", "--memory-mb", "-1"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["projects"] == {"proj-1": {"instances": 0, "memory_mb": -1}}
    assert listed["defaults"]["vcpus"] == 100
    assert manage.main([*args, "quota", "set", "proj-1"]) == 2  # nothing to set

    assert status.main([*args, "--projects", "--format", "json"]) == 0
    (project,) = json.loads(capsys.readouterr().out)["projects"]
    assert project["instances"] == 1 and project["vcpus"] == 2
    assert project["limits"] == {"instances": 0, "vcpus": 100, "memory_mb": -1, "local_gb": -1}
    assert status.main([*args, "--projects"]) == 0
    table = capsys.readouterr().out
    assert "1/0 !" in table and "2/100" in table


def test_announce_publishes_the_named_nodes_now(store, conf, tmp_path, capsys):
    _register(store, 3)
    args = _config(tmp_path, conf, "[DEFAULT]\ntransport_url = memory://\n")
    assert manage.main([*args, "announce", "--node", "cmp01", "--node", "cmp02"]) == 0
    assert "announced 2 node(s)" in capsys.readouterr().out
    assert manage.main([*args, "announce", "--node", "nowhere"]) == 1
    assert manage.main([*args, "announce"]) == 0
    assert "announced 3 node(s)" in capsys.readouterr().out


def test_a_replayed_service_update_marks_the_node_disabled(store, tmp_path):
    _register(store, 1)
    line = json.dumps(
        factories.envelope(factories.message("service.update", factories.service_payload("cmp00", True)))
    )
    report = replay.replay([line], store, 1_000_000)
    assert report.metrics["host_events"] == 1 and report.poison == []
    assert store.node_views()[0]["disabled"] is True


def test_a_snapshot_from_the_database_is_read_over_a_connection_that_cannot_write(store, conf):
    _register(store, 3)
    url = conf.database.connection
    loaded = snapshot.from_database(url)
    assert [p["host"] for p in loaded] == ["cmp00", "cmp01", "cmp02"]
    assert loaded == [{**p, "timestamp": loaded[0]["timestamp"]} for p in store.node_payloads()]
    engine = sa.create_engine(url, **snapshot._read_only(sa.make_url(url)))
    with engine.connect() as connection, pytest.raises(sa.exc.OperationalError, match="readonly"):
        connection.exec_driver_sql("DELETE FROM compute_nodes")
    engine.dispose()


def test_the_node_table_shows_what_keeps_a_scheduler_off_a_node(store, conf, tmp_path, capsys):
    _register(store, 2)
    status_update = factories.message("service.update", factories.service_payload("cmp01", True, zone="az1"))
    replay.replay([json.dumps(factories.envelope(status_update))], store, 1_000_000)
    assert status.main(_config(tmp_path, conf)) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("cmp")}
    assert rows["cmp00"].endswith("  az=nova") and rows["cmp01"].endswith("  disabled az=az1")


BAD_LIMIT = "invalid limit (-1: none, or 0 to 2**63-1) value"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["", "--vcpus", "1"], "argument PROJECT: invalid project id value: ''"),
        (["p" * 256, "--vcpus", "1"], "argument PROJECT: invalid project id value"),
        (["proj-1", "--vcpus", str(2**64)], f"argument --vcpus: {BAD_LIMIT}"),
        (["proj-1", "--vcpus", "-2"], f"argument --vcpus: {BAD_LIMIT}: '-2'"),
    ],
)
def test_quota_set_refuses_a_bad_project_or_limit_in_one_line(store, conf, tmp_path, capsys, argv, said):
    with pytest.raises(SystemExit) as exited:
        manage.main([*_config(tmp_path, conf), "quota", "set", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert said in err[-1] and "Traceback" not in "".join(err)
    assert store.quota_limits()[1] == {}


def test_quota_set_under_the_usage_says_the_alert_is_queued_not_published(store, conf, tmp_path, capsys):
    store.apply(factories.event("create.end", 1))
    assert manage.main([*_config(tmp_path, conf), "quota", "set", "proj-1", "--vcpus", "1"]) == 0
    assert "alert queued: the worker publishes it" in capsys.readouterr().err
