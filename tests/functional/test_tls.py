"""TLS to RabbitMQ with oslo.messaging's options, through a real handshake: a
TLS-terminating proxy in front of the local RabbitMQ, with a CA, a server and a
client certificate made by the test."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.functional.test_faults import Rig, feed, verdict
from tests.tls import Authority, TLSProxy

pytestmark = pytest.mark.functional
WORKER = shutil.which("tracker-worker", path=os.path.dirname(sys.executable))


@pytest.fixture
def pki(tmp_path):
    authority = Authority(tmp_path, "tracker-test")
    return authority, authority.issue("rabbit", server=True), authority.issue("tracker", server=False)


def _tls_section(ca_file, client, enable):
    return (
        "[oslo_messaging_rabbit]\n"
        + ("ssl = true\n" if enable else "")
        + f"ssl_ca_file = {ca_file}\nssl_cert_file = {client[0]}\nssl_key_file = {client[1]}\n"
    )


@pytest.mark.parametrize("switch", ["transport_url ?ssl=1", "[oslo_messaging_rabbit] ssl"])
def test_a_worker_consumes_and_publishes_over_tls(tmp_path, names, postgresql_url, pki, switch):
    authority, server, client = pki
    bodies, truth = feed(12, "tls")
    with TLSProxy(("127.0.0.1", 5672), server, client_ca=authority.ca_file) as proxy:
        query = "?ssl=1" if switch.startswith("transport_url") else ""
        transport = f"rabbit://guest:guest@127.0.0.1:{proxy.port}/{query}"
        with Rig(tmp_path, names, postgresql_url, transport=transport) as rig:
            with open(rig.args[1], "a") as config:
                config.write(_tls_section(authority.ca_file, client, enable=not query))
            rig.publish(bodies)
            worker = rig.start()
            verdict(rig.finish(worker, truth))
            log = rig.log_text()
    assert proxy.failures == []
    assert proxy.handshakes >= 2  # the consumer's connection and the capacity relay's
    assert f"broker: 127.0.0.1:{proxy.port} (virtual host /, TLS)" in log


def test_a_broker_certificate_from_another_ca_is_one_line_and_exit_2(tmp_path, pki):
    _, server, client = pki
    stranger = Authority(tmp_path, "stranger")
    with TLSProxy(("127.0.0.1", 5672), server) as proxy:
        config = tmp_path / "tracker.conf"
        config.write_text(
            f"[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:{proxy.port}/?ssl=1\n"
            f"[database]\nconnection = sqlite:///{tmp_path}/tracker.sqlite\n"
            + _tls_section(stranger.ca_file, client, enable=False)
        )
        result = subprocess.run(
            [WORKER, "--config-file", str(config)], capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line == (
        f"tracker-worker: error: TLS to RabbitMQ at 127.0.0.1:{proxy.port} (virtual host /, TLS) failed: "
        "the broker's certificate is not trusted (unable to get local issuer certificate); "
        f"check [oslo_messaging_rabbit] ssl_ca_file ({stranger.ca_file}), ssl_cert_file and ssl_key_file"
    )
    assert "Traceback" not in result.stdout
