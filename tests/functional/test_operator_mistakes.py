"""Each mistake an operator makes gets one line naming what to fix and a non-zero exit,
from the real console scripts, never a traceback; no command creates a database
file the operator did not name."""

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import require
from tracker.cmd import manage, status, worker

pytestmark = pytest.mark.functional
BIN = os.path.dirname(sys.executable)


def run(tmp_path, *argv, config=None, stdin=None):
    """(exit code, stdout, stderr lines) of a console script run in ``tmp_path``."""
    args = [shutil.which(argv[0], path=BIN), *(["--config-file", str(config)] if config else []), *argv[1:]]
    result = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=60, input=stdin, check=False
    )
    return result.returncode, result.stdout, result.stderr.splitlines()


def config(tmp_path, text, name="tracker.conf"):
    path = tmp_path / name
    path.write_text(text)
    return path


def sqlite_config(tmp_path, extra=""):
    return config(tmp_path, f"[database]\nconnection = sqlite:///{tmp_path}/named.sqlite\n{extra}")


def assert_one_line(lines, prog, *phrases):
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: "), lines
    for phrase in phrases:
        assert phrase in lines[0], lines


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_status_before_db_sync_on_a_named_sqlite_file(tmp_path):
    code, _, err = run(tmp_path, "tracker-status", config=sqlite_config(tmp_path))
    assert code == 1
    assert_one_line(err, "tracker-status", f"no SQLite database at {tmp_path}/named.sqlite", "db sync")
    assert not (tmp_path / "named.sqlite").exists()


def test_status_before_db_sync_on_postgresql(tmp_path, postgresql_url):
    code, _, err = run(
        tmp_path, "tracker-status", config=config(tmp_path, f"[database]\nconnection = {postgresql_url}\n")
    )
    assert code == 1
    assert_one_line(err, "tracker-status", "schema revision none", "run 'tracker-manage db sync'")


def test_worker_before_db_sync(tmp_path, postgresql_url):
    code, _, err = run(
        tmp_path, "tracker-worker", config=config(tmp_path, f"[database]\nconnection = {postgresql_url}\n")
    )
    assert code == 1
    assert_one_line(err, "tracker-worker", "schema revision none", "run 'tracker-manage db sync' first")


def test_a_missing_config_file(tmp_path):
    code, _, err = run(tmp_path, "tracker-status", "--config-file", "nosuch.conf")
    assert code == 2
    assert_one_line(err, "tracker-status", "Failed to find some config files", "nosuch.conf", "--config-file")


def test_a_malformed_config_file(tmp_path):
    code, _, err = run(
        tmp_path, "tracker-manage", "node", "list", config=config(tmp_path, "[database\nx = 1\n")
    )
    assert code == 2
    assert_one_line(err, "tracker-manage", "Failed to parse", "Invalid section (must end with ])")


def test_a_value_that_does_not_convert(tmp_path):
    code, _, err = run(tmp_path, "tracker-worker", config=sqlite_config(tmp_path, "[worker]\nlanes = abc\n"))
    assert code == 2
    assert_one_line(err, "tracker-worker", "invalid value for [worker] lanes", "'abc'")


def test_an_unreachable_database_names_host_and_port_but_not_the_password(tmp_path):
    port = free_port()
    url = f"postgresql://tracker:s3cret@127.0.0.1:{port}/tracker"
    code, out, err = run(
        tmp_path, "tracker-status", config=config(tmp_path, f"[database]\nconnection = {url}\n")
    )
    assert code == 1
    assert_one_line(err, "tracker-status", f"cannot use the database postgresql 127.0.0.1:{port}/tracker")
    assert "s3cret" not in out + "".join(err)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/tracker_nosuch_db",
            'database "tracker_nosuch_db" does not exist',
        ),
        ("postgresql://tracker_nosuch_role@127.0.0.1:5432/test", 'role "tracker_nosuch_role" does not exist'),
    ],
)
def test_a_nonexistent_database_or_role(tmp_path, url, said):
    """The worker too: psycopg gives no SQLSTATE for a refused login, and the worker
    once retried it forever as a transient failure."""
    require("postgresql")
    conf = config(tmp_path, f"[database]\nconnection = {url}\n")
    for argv in (["tracker-manage", "audit"], ["tracker-worker"]):
        code, out, err = run(tmp_path, *argv, config=conf)
        assert code == 1
        assert_one_line(err, argv[0], "cannot use the database postgresql 127.0.0.1:5432/", said)
        assert (out + err[0]).count(said) == 1, out  # said once, not in a log line as well


def test_replay_of_a_missing_file(tmp_path):
    conf = sqlite_config(tmp_path)
    assert run(tmp_path, "tracker-manage", "db", "sync", config=conf)[0] == 0
    code, _, err = run(tmp_path, "tracker-manage", "replay", "nosuch.jsonl", config=conf)
    assert code == 1
    assert_one_line(err, "tracker-manage", "cannot read nosuch.jsonl: No such file or directory")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("kafka://broker:9092", "transport_url scheme 'kafka' is not supported"),
        (
            "rabbit://guest:guest@127.0.0.1:notaport/",
            "'notaport' in '127.0.0.1:notaport' is not a port number",
        ),
        ("rabbit://guest:guest@127.0.0.1:5671/?ssl=maybe", "ssl='maybe' in transport_url is not a boolean"),
    ],
)
def test_a_transport_url_that_is_not_rabbitmq_or_malformed(tmp_path, url, said):
    conf = sqlite_config(tmp_path, f"[DEFAULT]\ntransport_url = {url}\n")
    code, _, err = run(tmp_path, "tracker-worker", config=conf)
    assert code == 2
    assert_one_line(err, "tracker-worker", said)


def test_db_sync_as_a_role_without_create_on_the_schema(tmp_path, postgresql_url):
    """PostgreSQL 15 grants no CREATE on schema public to PUBLIC: a traceback once."""
    role = f"tracker_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgresql_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 's3cret'")
            connection.exec_driver_sql(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        url = sa.make_url(postgresql_url).set(username=role, password="s3cret")
        conf = config(tmp_path, f"[database]\nconnection = {url.render_as_string(hide_password=False)}\n")
        code, _, err = run(tmp_path, "tracker-manage", "db", "sync", config=conf)
        assert code == 1
        where = f"postgresql 127.0.0.1:5432/{url.database}"
        assert_one_line(
            err, "tracker-manage", f"cannot use the database {where}: permission denied for schema public"
        )
        assert "s3cret" not in err[0]
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def test_no_database_named_creates_nothing(tmp_path):
    for argv in (["tracker-status"], ["tracker-manage", "node", "list"], ["tracker-worker"]):
        # an empty --config-dir: whatever /etc/tracker holds on this machine stays out
        code, _, err = run(tmp_path, argv[0], "--config-dir", str(tmp_path), *argv[1:])
        assert code == 2
        assert_one_line(err, argv[0], "[database] connection is not set")
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_section_or_option_is_reported_and_creates_nothing(tmp_path):
    conf = config(tmp_path, "[databse]\nconnection = sqlite:///x.sqlite\n[worker]\nlanse = 3\n")
    code, _, err = run(tmp_path, "tracker-status", config=conf)
    assert code == 2
    assert any("WARNING" in line and f"unknown [databse] in {conf}" in line for line in err), err
    assert any("WARNING" in line and f"unknown [worker] lanse in {conf}" in line for line in err), err
    assert err[-1].startswith("tracker-status: error: [database] connection is not set")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracker.conf"]


def test_a_plain_mysql_url_means_pymysql(tmp_path, mariadb_url):
    url = mariadb_url.replace("mysql+pymysql://", "mysql://")
    conf = config(tmp_path, f"[database]\nconnection = {url}\n")
    code, out, err = run(tmp_path, "tracker-manage", "db", "sync", config=conf)
    assert code == 0, err
    assert out.startswith("database at revision 00"), out


COUNT = "count (an integer from 0 to 2147483647)"
RATIO = "ratio (a number > 0, at most 3.4e+38)"
IMPOSSIBLE_INVENTORY = [
    ("--vcpus", "-8", f"argument --vcpus: invalid {COUNT} value: '-8'"),
    ("--reserved-local-gb", "-1", f"argument --reserved-local-gb: invalid {COUNT} value: '-1'"),
    # above the INTEGER column: once a DataError (PostgreSQL) or OverflowError (SQLite) traceback
    ("--vcpus", "3000000000", f"argument --vcpus: invalid {COUNT} value: '3000000000'"),
    (
        "--memory-mb",
        "99999999999999999999",
        f"argument --memory-mb: invalid {COUNT} value: '99999999999999999999'",
    ),
    ("--cpu-allocation-ratio", "0", f"argument --cpu-allocation-ratio: invalid {RATIO} value: '0'"),
    ("--ram-allocation-ratio", "-1.5", f"argument --ram-allocation-ratio: invalid {RATIO} value: '-1.5'"),
    ("--disk-allocation-ratio", "nan", f"argument --disk-allocation-ratio: invalid {RATIO} value: 'nan'"),
    # once an OverflowError traceback computing the capacity
    ("--cpu-allocation-ratio", "1e308", f"argument --cpu-allocation-ratio: invalid {RATIO} value: '1e308'"),
]


def test_node_set_refuses_impossible_inventory(tmp_path, capsys, monkeypatch):
    """argparse refuses them before anything else runs: checked in this process (a script
    start costs ~2 s each); the real script, once, shows nothing was registered."""
    conf = sqlite_config(tmp_path)
    assert run(tmp_path, "tracker-manage", "db", "sync", config=conf)[0] == 0
    monkeypatch.setattr(sys, "argv", ["tracker-manage"])  # argparse names the program from it
    for option, value, message in IMPOSSIBLE_INVENTORY:
        node = ["--config-file", str(conf), "node", "set", "cmp1", "cmp1", "--vcpus", "8", option, value]
        with pytest.raises(SystemExit) as exit:
            manage.main(node)
        assert exit.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"tracker-manage node set: error: {message}"
    assert "(no compute nodes yet)" in run(tmp_path, "tracker-manage", "node", "list", config=conf)[1]


def test_node_set_refuses_more_reserved_than_total_and_keeps_the_node(tmp_path):
    conf = sqlite_config(tmp_path)
    assert run(tmp_path, "tracker-manage", "db", "sync", config=conf)[0] == 0
    node = ["tracker-manage", "node", "set", "cmp1", "cmp1"]
    code, out, _ = run(
        tmp_path, *node, "--vcpus", "8", "--memory-mb", "4096", "--local-gb", "40", config=conf
    )
    assert code == 0
    assert json.loads(out)["resources"]["vcpus"]["capacity"] == 32
    code, _, err = run(tmp_path, *node, "--reserved-vcpus", "9", config=conf)
    assert code == 2
    assert_one_line(err, "tracker-manage", "node cmp1/cmp1: reserved_vcpus 9 exceeds vcpus 8")
    code, _, err = run(tmp_path, *node, "--memory-mb", "256", config=conf)  # the default reserves 512
    assert code == 2
    assert_one_line(err, "tracker-manage", "reserved_memory_mb 512 exceeds memory_mb 256")
    status = json.loads(run(tmp_path, "tracker-status", "--format", "json", config=conf)[1])
    assert status["nodes"][0]["resources"]["vcpus"]["capacity"] == 32
    assert status["nodes"][0]["resources"]["memory_mb"]["total"] == 4096


def test_every_command_has_a_version(capsys):
    """In this process: test_packaging runs --version of the three installed scripts."""
    for main in (worker.main, manage.main, status.main):
        with pytest.raises(SystemExit) as exit:
            main(["--version"])
        assert exit.value.code == 0
        said = capsys.readouterr()
        assert (said.out + said.err).strip() == "0.1.0"


def test_the_broker_is_named_by_host_and_port_never_its_password(tmp_path, postgresql_url):
    """Retrying an unreachable broker names it; the password appears nowhere."""
    port = free_port()
    conf = config(
        tmp_path,
        f"[DEFAULT]\ntransport_url = rabbit://guest:s3cret@127.0.0.1:{port}/\n"
        f"[database]\nconnection = {postgresql_url}\n"
        "[worker]\nreconnect_initial_backoff = 0.05\nreconnect_max_backoff = 0.1\n",
    )
    assert run(tmp_path, "tracker-manage", "db", "sync", config=conf)[0] == 0
    worker = subprocess.Popen(
        [shutil.which("tracker-worker", path=BIN), "--config-file", str(conf)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in worker.stdout:
            lines.append(line)
            if "RabbitMQ connect to" in line:
                break
    finally:
        worker.terminate()
        rest, _ = worker.communicate(timeout=30)
    log = "".join(lines) + rest
    assert f"RabbitMQ connect to 127.0.0.1:{port} (virtual host /)" in log, log
    assert "database: postgresql 127.0.0.1:5432/" in log
    assert "s3cret" not in log
    assert worker.returncode == 0
