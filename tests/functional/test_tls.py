"""TLS to RabbitMQ with oslo.messaging's options, through a real handshake: a
TLS-terminating proxy in front of the local RabbitMQ, with a CA, a server and a
client certificate made by the test."""

import logging
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import make_conf
from tests.functional.test_faults import Rig, feed, verdict
from tests.proxy import Proxy
from tests.tls import Authority, TLSProxy
from tracker.bus import amqp
from tracker.errors import ConfigError

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
    """With ?ssl=1, the first of two hosts accepts and closes (HAProxy without a backend):
    the start check must not take that for a configuration error, and failover finds the other."""
    authority, server, client = pki
    bodies, truth = feed(12, "tls")
    with (
        TLSProxy(("127.0.0.1", 5672), server, client_ca=authority.ca_file) as proxy,
        Proxy("127.0.0.1", 5672) as closing,
    ):
        closing.reset()
        query = "?ssl=1" if switch.startswith("transport_url") else ""
        hosts = [f"guest:guest@127.0.0.1:{port}" for port in ([closing.port] if query else []) + [proxy.port]]
        transport = f"rabbit://{','.join(hosts)}/{query}"
        with Rig(tmp_path, names, postgresql_url, transport=transport) as rig:
            with open(rig.args[1], "a") as config:
                config.write(_tls_section(authority.ca_file, client, enable=not query))
            rig.publish(bodies)
            worker = rig.start()
            verdict(rig.finish(worker, truth))
            log = rig.log_text()
    assert proxy.failures == []
    assert proxy.handshakes >= 2  # the consumer's connection and the capacity relay's
    first = f"127.0.0.1:{closing.port}," if query else ""
    assert f"broker: {first}127.0.0.1:{proxy.port} (virtual host /, TLS)" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("peer", ["accepts and closes", "plain AMQP"])
def test_a_handshake_that_fails_for_no_certificate_is_left_to_reconnection(pki, caplog, peer):
    """Not a configuration error (exit 2, never restarted by systemd): logged, retried later."""
    authority = pki[0]
    with Proxy("127.0.0.1", 5672) as listener:
        if peer == "accepts and closes":
            listener.reset()
        conf = make_conf(DEFAULT={"transport_url": f"rabbit://guest:guest@127.0.0.1:{listener.port}/?ssl=1"})
        conf.set_override("ssl_ca_file", authority.ca_file, group="oslo_messaging_rabbit")
        with caplog.at_level(logging.WARNING, logger="tracker.bus.amqp"):
            amqp.check_tls(conf)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"TLS to RabbitMQ at 127.0.0.1:{listener.port} failed (")
    if peer == "plain AMQP":
        assert "is the port a TLS port" in line


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


def test_an_unreadable_tls_file_is_a_configuration_error_before_any_network(tmp_path, pki):
    authority, _, client = pki
    conf = make_conf(DEFAULT={"transport_url": "rabbit://guest:guest@192.0.2.1:5671/?ssl=1"})
    conf.set_override("ssl_ca_file", authority.ca_file, group="oslo_messaging_rabbit")
    conf.set_override("ssl_cert_file", client[0], group="oslo_messaging_rabbit")
    conf.set_override("ssl_key_file", str(tmp_path / "nosuch.key"), group="oslo_messaging_rabbit")
    with pytest.raises(ConfigError) as caught:
        amqp.check_tls(conf)  # 192.0.2.1 (TEST-NET) would hang: the files are checked first
    assert str(caught.value).startswith("cannot use the TLS files of [oslo_messaging_rabbit] (ssl_ca_file ")
    assert str(caught.value).endswith(f"ssl_key_file {tmp_path / 'nosuch.key'}): No such file or directory")
