"""oslo.log's standard options on the real console scripts: --log-file, --log-dir,
[DEFAULT] log_file, use_json, use_journal. The worker is started on a database
that does not exist yet, so it logs a few lines and stops at once."""

import json
import os
import shutil
import subprocess
import sys

BIN = os.path.dirname(sys.executable)


def _worker(tmp_path, *args, extra=""):
    config = tmp_path / "tracker.conf"
    config.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/never.sqlite\n{extra}")
    result = subprocess.run(
        [shutil.which("tracker-worker", path=BIN), "--config-file", str(config), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"tracker-worker: error: no SQLite database at {tmp_path}/never.sqlite: "
        "run 'tracker-manage db sync' to create it"
    ]
    assert not (tmp_path / "never.sqlite").exists()
    return result.stdout


def _logged(text):
    assert " INFO tracker.cmd.worker [-] broker: 127.0.0.1:5672 (virtual host /)" in text, text
    assert " ERROR tracker.cmd.worker [-] no SQLite database at " in text, text


def test_log_file_in_the_configuration_is_honoured(tmp_path):
    stdout = _worker(tmp_path, extra=f"[DEFAULT]\nlog_file = {tmp_path}/worker.log\n")
    assert stdout == ""
    _logged((tmp_path / "worker.log").read_text())


def test_log_file_and_log_dir_on_the_command_line(tmp_path):
    (tmp_path / "logs").mkdir()
    assert _worker(tmp_path, "--log-dir", str(tmp_path / "logs"), "--log-file", "w.log") == ""
    _logged((tmp_path / "logs" / "w.log").read_text())


def test_use_json_gives_one_json_document_per_line(tmp_path):
    lines = _worker(tmp_path, extra="[DEFAULT]\nuse_json = true\n").splitlines()
    records = [json.loads(line) for line in lines]
    assert {"levelname": "ERROR", "name": "tracker.cmd.worker"}.items() <= records[-1].items()
    assert records[-1]["message"].startswith("no SQLite database at ")


def test_use_journal_without_the_systemd_bindings_is_one_line(tmp_path):
    config = tmp_path / "tracker.conf"
    config.write_text("[DEFAULT]\nuse_journal = true\n")
    result = _status(config)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tracker-status: error: cannot set up logging (Systemd bindings do not exist): "
        "pip install 'tracker[systemd]' for use_journal"
    ]


def test_an_unwritable_log_file_is_one_line(tmp_path):
    config = tmp_path / "tracker.conf"
    config.write_text(f"[DEFAULT]\nlog_file = {tmp_path}/no/such/dir/tracker.log\n")
    result = _status(config)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "tracker-status: error: cannot open the log file: [Errno 2] No such file or directory"
    )


def _status(config):
    return subprocess.run(
        [shutil.which("tracker-status", path=BIN), "--config-file", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
