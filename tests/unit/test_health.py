import datetime
import json

import pytest

from tracker import health
from tracker.cmd import status

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0)


def test_fresh_record_is_healthy(tmp_path):
    path = str(tmp_path / "health.json")
    health.write(path, health.record("w1", {"applied": 3}, 0, NOW))
    assert health.check(path, 30, NOW + datetime.timedelta(seconds=10)) == (
        True,
        "worker consuming; record 10.0s old",
    )
    assert json.loads((tmp_path / "health.json").read_text())["counters"] == {"applied": 3}


def test_old_record_means_the_worker_is_not_consuming(tmp_path):
    path = str(tmp_path / "health.json")
    health.write(path, health.record("w1", {}, 0, NOW))
    healthy, why = health.check(path, 30, NOW + datetime.timedelta(seconds=90))
    assert not healthy and "90s old" in why


def test_missing_or_broken_record_is_unhealthy(tmp_path):
    assert not health.check(str(tmp_path / "absent.json"), 30, NOW)[0]
    (tmp_path / "broken.json").write_text("{")
    assert not health.check(str(tmp_path / "broken.json"), 30, NOW)[0]


def test_status_check_health_exit_codes(tmp_path, capsys):
    path = tmp_path / "health.json"
    conf_file = tmp_path / "tracker.conf"
    conf_file.write_text(f"[worker]\nhealth_file = {path}\n")
    args = ["--config-file", str(conf_file), "--check-health"]
    assert status.main(args) == 1  # nothing written yet
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    health.write(str(path), health.record("w1", {}, 0, now))
    assert status.main(args) == 0
    assert "worker consuming" in capsys.readouterr().out


def test_a_failed_write_leaves_no_stray_file(tmp_path):
    target = tmp_path / "health.json"
    target.mkdir()  # a directory where the file should be: os.replace fails
    with pytest.raises(OSError):
        health.write(str(target), health.record("w1", {}, 0, NOW))
    assert [p.name for p in tmp_path.iterdir()] == ["health.json"]


def test_lanes_that_finish_nothing_make_the_worker_unhealthy(tmp_path):
    path = str(tmp_path / "health.json")
    health.write(path, health.record("w1", {}, 7, NOW, stalled_for=120.0))
    healthy, why = health.check(path, 30, NOW)
    assert not healthy and "7 pending" in why
