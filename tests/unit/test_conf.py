import pathlib
import subprocess
import sys

from oslo_config import cfg

from tracker import conf as tracker_conf
from tracker.conf import opts

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_sample_config_is_in_sync_with_the_options(tmp_path):
    generated = tmp_path / "tracker.conf.sample"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--config-file",
            str(ROOT / "etc/tracker/tracker-config-generator.conf"),
            "--output-file",
            str(generated),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    committed = (ROOT / "etc/tracker/tracker.conf.sample").read_text()
    assert generated.read_text() == committed, (
        "regenerate: oslo-config-generator --config-file etc/tracker/tracker-config-generator.conf"
    )


def test_every_group_is_listed_for_the_generator():
    groups = {group for group, _ in opts.list_opts()}
    assert groups == {
        "DEFAULT",
        "database",
        "nova_notifications",
        "capacity_notifications",
        "worker",
        "accounting",
        "quota",
        "oslo_messaging_rabbit",
    }


def test_secrets_are_marked_secret_so_oslo_never_logs_them():
    conf = tracker_conf.load([])
    assert conf._get_opt_info("transport_url")["opt"].secret
    assert conf._get_opt_info("connection", "database")["opt"].secret


def test_defaults_serve_a_newcomer_locally_but_the_database_is_named():
    conf = tracker_conf.load([])
    assert conf.transport_url == "rabbit://guest:guest@127.0.0.1:5672/"
    # no default file: no command creates a database the operator did not name
    assert conf.database.connection is None
    assert conf.nova_notifications.exchange == "nova"
    assert conf.capacity_notifications.topic == "capacity_notifications"


def test_each_configuration_is_independent():
    first, second = tracker_conf.load([]), tracker_conf.load([])
    first.set_override("lanes", 9, group="worker")
    assert second.worker.lanes == 2
    assert not hasattr(cfg, "CONF") or "worker" not in cfg.CONF


def test_config_file_values_are_read(tmp_path):
    path = tmp_path / "tracker.conf"
    path.write_text("[worker]\nlanes = 7\n[nova_notifications]\nnotification_format = unversioned\n")
    conf = tracker_conf.load(["--config-file", str(path)])
    assert conf.worker.lanes == 7
    assert conf.nova_notifications.notification_format == "unversioned"
