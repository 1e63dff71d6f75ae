"""The package as an operator gets it: a wheel built with ``pip wheel .``, installed
in a fresh virtualenv with its extra, run from outside the source tree."""

import ast
import email
import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.conftest import require

pytestmark = pytest.mark.functional
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*args, cwd, timeout=600):
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]} {result.stderr[-3000:]}"
    return result.stdout


def test_the_wheel_installs_in_a_fresh_venv_and_its_commands_run_outside_the_tree(tmp_path, postgresql_url):
    require("postgresql")
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, ROOT, cwd=tmp_path)
    (wheel,) = wheels.glob("tracker-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(archive.read(next(n for n in names if n.endswith("/METADATA"))))
    assert any(n.endswith("/LICENSE") for n in names)
    assert "## Deploying" in metadata.get_payload()
    assert metadata["License"] == "Apache-2.0" and metadata["License-File"] == "LICENSE"
    assert metadata["Description-Content-Type"] == "text/markdown"
    required = {re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0].lower() for r in metadata.get_all("Requires-Dist")}
    assert _imported_distributions() <= required, "tracker/ imports what it does not require"

    # A fresh venv, nothing inherited: every dependency comes from the wheel's metadata.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin/python", "-m", "pip", "install", "--quiet", f"{wheel}[postgresql]", cwd=tmp_path)
    installed = _run(venv / "bin/python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path).lower()
    assert "psycopg==" in installed and "oslo.log==" in installed
    # the worker never imports oslo.messaging: neither it nor eventlet is installed
    assert "oslo.messaging" not in installed and "eventlet" not in installed

    # A plain postgresql:// URL: psycopg 3, from the postgresql extra.
    conf = tmp_path / "tracker.conf"
    conf.write_text(
        f"[database]\nconnection = {postgresql_url.replace('postgresql+psycopg://', 'postgresql://')}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for prog in ("tracker-worker", "tracker-manage", "tracker-status"):
        assert _run(venv / "bin" / prog, "--version", cwd=elsewhere).strip() == "0.1.0"
    synced = _run(venv / "bin/tracker-manage", "--config-file", conf, "db", "sync", cwd=elsewhere)
    assert synced.startswith("database at revision 00")
    status = _run(venv / "bin/tracker-status", "--config-file", conf, cwd=elsewhere)
    assert "(no compute nodes yet)" in status
    assert list(elsewhere.iterdir()) == []


def _imported_distributions():
    """The distributions whose modules tracker/ imports directly (amqp, not only through kombu)."""
    modules = set()
    for source in (ROOT / "tracker").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    owners = importlib.metadata.packages_distributions()
    third_party = modules - set(sys.stdlib_module_names) - {"tracker"}
    return {dist.lower() for module in third_party for dist in owners[module]}


def test_the_sdist_carries_the_licence_tests_configuration_and_tools(tmp_path):
    _run(sys.executable, "setup.py", "-q", "sdist", "--dist-dir", tmp_path, cwd=ROOT)
    (sdist,) = tmp_path.glob("tracker-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for expected in (
        "LICENSE",
        "README.md",
        "tests/functional/test_packaging.py",
        "etc/tracker/tracker.conf.sample",
        "etc/tracker/tracker-worker.service",
        "tools/run-tests",
        "tools/demo",
    ):
        assert expected in names, expected
    assert not any(name.endswith((".pyc", ".sqlite")) for name in names)
