"""What tracker-status shows of names that came from messages, on real PostgreSQL (issue 12)."""

import json

import pytest

from tests.conftest import make_conf
from tracker.cmd import status
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.engine import Database

pytestmark = pytest.mark.functional

ANSI_HOST = "evil\x1b[2J\x1b[31mPWNED\x1b[0m"
NEWLINE_NODE = "cmp1\ncmp01                         0  0/64 0/32256 0/400 1"


def test_hostile_names_are_shown_escaped_never_raw(postgresql_url, tmp_path, capsys):
    conf = make_conf(postgresql_url)
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf)
    # Rows written before names were checked, or by an operator: shown safely all the same.
    store.set_node(ANSI_HOST, ANSI_HOST, NodeInventory(vcpus=16, memory_mb=32768, local_gb=400))
    store.set_node("cmp1", NEWLINE_NODE, NodeInventory(vcpus=16, memory_mb=32768, local_gb=400))
    db.dispose()
    config = tmp_path / "tracker.conf"
    config.write_text(f"[database]\nconnection = {postgresql_url}\n")

    assert status.main(["--config-file", str(config)]) == 0
    table = capsys.readouterr().out
    assert "\x1b" not in table
    node_rows = [line for line in table.splitlines() if line.startswith(("evil", "cmp"))]
    assert len(node_rows) == 2  # no forged row
    assert "evil\\x1b[2J\\x1b[31mPWNED\\x1b[0m" in table and "cmp1\\ncmp01" in table

    assert status.main(["--config-file", str(config), "--format", "json"]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown  # JSON escapes control characters; the values stay exact
    assert {node["host"] for node in json.loads(shown)["nodes"]} == {ANSI_HOST, "cmp1"}
