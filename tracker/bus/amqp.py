"""Connections and entities, declared exactly as oslo.messaging declares them.

RabbitMQ refuses to redeclare an exchange with other arguments (406
PRECONDITION_FAILED) and closes the channel, so Nova's exchange is declared
as oslo.messaging's rabbit driver does: type topic, not auto-deleted, durable
only when ``amqp_durable_queues`` is on.
"""

import logging
import ssl
import urllib.parse
from typing import Any

import kombu
from oslo_config import cfg, types

from tracker.errors import ConfigError

LOG = logging.getLogger(__name__)

_RABBIT_SCHEMES = ("rabbit", "amqp")
# kombu's in-process transport, for unit tests only
_TEST_SCHEMES = ("memory",)
_TLS_OPTIONS = ("ssl", "ssl_ca_file", "ssl_cert_file", "ssl_key_file")
# Longest wait for a publisher confirm: a broker in a memory alarm must not
# stall the consumer thread, nor hold an outbox transaction, indefinitely.
CONFIRM_TIMEOUT = 10.0


def broker_urls(transport_url: str) -> list[str]:
    """oslo.messaging's ``rabbit://u:p@h1:5672,u:p@h2:5672/vhost`` as kombu failover URLs.

    Parsed here rather than with ``oslo_messaging.TransportURL``: importing
    oslo.messaging pulls eventlet into every worker for one string split.
    """
    parsed = urllib.parse.urlsplit(transport_url)
    if parsed.scheme in _TEST_SCHEMES:
        return [transport_url]
    if parsed.scheme not in _RABBIT_SCHEMES:
        raise ConfigError(
            f"transport_url scheme {parsed.scheme!r} is not supported: the tracker consumes Nova's "
            "notifications from RabbitMQ, rabbit://USER:PASSWORD@HOST:5672/VHOST"
        )
    vhost = urllib.parse.quote(urllib.parse.unquote(parsed.path[1:]) or "/", safe="")
    hosts = [h for h in parsed.netloc.split(",") if h]
    return [f"amqp://{_with_port(h)}/{vhost}" for h in hosts] or [f"amqp://127.0.0.1:5672/{vhost}"]


def _with_port(netloc: str) -> str:
    """Keep user:pass@ as given (already percent-encoded); default the port to 5672."""
    credentials, _, address = netloc.rpartition("@")
    port = address.rpartition(":")[2]
    if ":" not in address or address.endswith("]"):
        address += ":5672"
    elif not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(
            f"transport_url: {port!r} in {address!r} is not a port number: rabbit://USER:PASSWORD@HOST:5672/VHOST"
        )
    return f"{credentials}@{address}" if credentials else address


def describe(conf: cfg.ConfigOpts) -> str:
    """The brokers' host:port and virtual host, for log lines: never the credentials."""
    parsed = urllib.parse.urlsplit(str(conf.transport_url))
    if parsed.scheme in _TEST_SCHEMES:
        return f"{parsed.scheme}://"
    hosts = [_with_port(h).rpartition("@")[2] for h in parsed.netloc.split(",") if h] or ["127.0.0.1:5672"]
    vhost = urllib.parse.unquote(parsed.path[1:]) or "/"
    tls = ", TLS" if ssl_options(conf) else ""
    return f"{','.join(hosts)} (virtual host {vhost}{tls})"


def ssl_options(conf: cfg.ConfigOpts) -> dict[str, Any] | bool:
    """TLS parameters for kombu, built as oslo.messaging's rabbit driver builds
    them from the same options: the CA file makes the broker's certificate
    required, and its name is checked when there is one broker host."""
    settings = _tls_settings(conf)
    try:
        enabled = types.Boolean()(settings["ssl"])
    except ValueError as error:
        raise ConfigError(
            f"ssl={settings['ssl']!r} in transport_url is not a boolean: ?ssl=1 or ?ssl=0"
        ) from error
    if not enabled:
        return False
    params: dict[str, Any] = {}
    if settings["ssl_key_file"]:
        params["keyfile"] = settings["ssl_key_file"]
    if settings["ssl_cert_file"]:
        params["certfile"] = settings["ssl_cert_file"]
    if settings["ssl_ca_file"]:
        params["ca_certs"] = settings["ssl_ca_file"]
        params["cert_reqs"] = ssl.CERT_REQUIRED
        hosts = [h for h in urllib.parse.urlsplit(conf.transport_url).netloc.split(",") if h]
        params["server_hostname"] = _hostname(hosts[0]) if len(hosts) == 1 else None
    return params or True


def _tls_settings(conf: cfg.ConfigOpts) -> dict[str, Any]:
    """[oslo_messaging_rabbit], overridden by query parameters of the same name in
    ``transport_url`` (``?ssl=1``), as oslo.messaging does."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(conf.transport_url).query)
    group = conf.oslo_messaging_rabbit
    return {name: query[name][-1] if name in query else group[name] for name in _TLS_OPTIONS}


def _hostname(netloc: str) -> str:
    address = netloc.rpartition("@")[2]
    if address.startswith("["):
        return address[1 : address.index("]")]
    return address.rpartition(":")[0] if address.rpartition(":")[2].isdigit() else address


def check_tls(conf: cfg.ConfigOpts) -> None:
    """With TLS on, check at start what only an operator can fix, in one line (a
    ConfigError, exit 2, which systemd does not restart): a TLS file that cannot be
    read or used, and brokers whose certificate the CA file does not trust.

    Anything else (a listener that accepts and closes, as HAProxy without a
    backend or a broker still starting does; a refused or reset connection; a
    plain port) may pass by itself: it is logged and left to the worker's
    reconnection. One broker host that completes the handshake is enough; the
    certificate is declared untrusted only when every host said so.
    """
    options = ssl_options(conf)
    if not options:
        return
    _load_tls_files(conf)
    untrusted: list[str] = []
    for url in broker_urls(conf.transport_url):
        where = _with_port(urllib.parse.urlsplit(url).netloc).rpartition("@")[2]
        connection = kombu.Connection(url, heartbeat=conf.worker.heartbeat, ssl=options)
        try:
            connection.ensure_connection(max_retries=0)  # one attempt: retrying is the worker's job
            return
        except Exception as error:  # noqa: BLE001 - sorted below; the rest is the reconnection's
            verification = _untrusted(error)
            if verification is not None:
                untrusted.append(verification)
            else:
                LOG.warning("TLS to RabbitMQ at %s failed (%s); will keep trying", where, tls_hint(error))
        finally:
            discard(connection)
    if untrusted and len(untrusted) == len(broker_urls(conf.transport_url)):
        ca_file = _tls_settings(conf)["ssl_ca_file"] or "unset"
        raise ConfigError(
            f"TLS to RabbitMQ at {describe(conf)} failed: the broker's certificate is not trusted "
            f"({untrusted[0]}); check [oslo_messaging_rabbit] ssl_ca_file ({ca_file}), "
            "ssl_cert_file and ssl_key_file"
        )


def _load_tls_files(conf: cfg.ConfigOpts) -> None:
    """Read the CA, certificate and key files as the handshake will: a missing,
    unreadable or mismatched file is a ConfigError, before any network."""
    settings = _tls_settings(conf)
    try:
        context = ssl.create_default_context(cafile=settings["ssl_ca_file"] or None)
        if settings["ssl_cert_file"]:
            context.load_cert_chain(settings["ssl_cert_file"], settings["ssl_key_file"] or None)
    except OSError as error:  # ssl.SSLError included: not PEM, key and certificate apart
        raise ConfigError(
            f"cannot use the TLS files of [oslo_messaging_rabbit] (ssl_ca_file "
            f"{settings['ssl_ca_file'] or 'unset'}, ssl_cert_file {settings['ssl_cert_file'] or 'unset'}, "
            f"ssl_key_file {settings['ssl_key_file'] or 'unset'}): {error.strerror or error}"
        ) from error


def _untrusted(error: BaseException) -> str | None:
    """The verification failure in kombu's wrapping; None when it is something else."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message)
        seen = seen.__cause__ or seen.__context__
    return None


def tls_hint(error: BaseException) -> str:
    """An error's first line, and for TLS spoken to a plain port, a hint to check the port."""
    text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and seen.reason == "WRONG_VERSION_NUMBER":
            return (
                f"{text}; the peer does not speak TLS: is the port a TLS port (RabbitMQ's is usually 5671)?"
            )
        seen = seen.__cause__ or seen.__context__
    return text


def connect(conf: cfg.ConfigOpts, confirm_each: bool = True) -> kombu.Connection:
    """With ``confirm_each``, a publish returns once the broker has it; without, the
    caller selects confirms and waits for them itself (see publisher.Confirms), and a
    socket write that blocks (a broker in a resource alarm stops reading publishers)
    fails after CONFIRM_TIMEOUT instead of holding the caller's transaction for ever."""
    options: dict[str, Any] = {"confirm_publish": confirm_each}
    if not confirm_each:
        options["write_timeout"] = CONFIRM_TIMEOUT
    return kombu.Connection(
        broker_urls(conf.transport_url),
        heartbeat=conf.worker.heartbeat,
        failover_strategy="round-robin",
        transport_options=options,
        ssl=ssl_options(conf),
    )


def nova_exchange(conf: cfg.ConfigOpts) -> kombu.Exchange:
    group = conf.nova_notifications
    return kombu.Exchange(group.exchange, type="topic", durable=group.amqp_durable_queues, auto_delete=False)


def notification_topics(conf: cfg.ConfigOpts) -> list[str]:
    group = conf.nova_notifications
    topic = group.versioned_topic if group.notification_format == "versioned" else group.legacy_topic
    return [f"{topic}.info", f"{topic}.error"]


def notification_queue(conf: cfg.ConfigOpts) -> kombu.Queue:
    """Our own durable queue, bound to Nova's routing keys; Nova's queues stay untouched."""
    exchange = nova_exchange(conf)
    bindings = [kombu.binding(exchange, routing_key=key) for key in notification_topics(conf)]
    return kombu.Queue(conf.nova_notifications.queue, bindings=bindings, durable=True, auto_delete=False)


def dead_letter_queue(conf: cfg.ConfigOpts) -> kombu.Queue:
    return kombu.Queue(
        conf.nova_notifications.dead_letter_queue,
        exchange=kombu.Exchange(""),
        routing_key=conf.nova_notifications.dead_letter_queue,
        durable=True,
        auto_delete=False,
    )


def capacity_exchange(conf: cfg.ConfigOpts) -> kombu.Exchange:
    group = conf.capacity_notifications
    return kombu.Exchange(group.exchange, type="topic", durable=group.amqp_durable_queues, auto_delete=False)


def is_precondition_failed(error: BaseException) -> bool:
    """RabbitMQ's 406: an entity exists with other arguments than ours."""
    return getattr(error, "reply_code", None) == 406 or getattr(error, "code", None) == 406


def discard(connection: kombu.Connection) -> None:
    """Drop a connection that failed, without the close handshake.

    A graceful close waits for the broker's close-ok: through a partition
    that is as long as the partition lasts, and whatever the broker still had
    in flight would be handed over meanwhile. A failed connection has nothing
    left to say, so its socket is simply closed.
    """
    try:
        connection.collect()
    except Exception as error:  # noqa: BLE001 - it is being thrown away anyway
        LOG.debug("discarding a failed RabbitMQ connection: %s", error)


def close(connection: kombu.Connection) -> None:
    """Close a connection that works, with the handshake, on the way out."""
    try:
        connection.release()
    except Exception as error:  # noqa: BLE001 - nothing is left to do with it
        LOG.debug("closing a RabbitMQ connection: %s", error)


# kombu inflates a body whose ``compression`` header names a codec before any
# of our code sees it: a few hundred bytes of bz2 become gigabytes. Nova never
# compresses, so the header is moved aside before kombu reads it, and the
# message is refused as it came.
COMPRESSION_HEADER = "compression"
REFUSED_COMPRESSION_HEADER = "x-tracker-refused-compression"


def refuse_compression(channel: Any) -> None:
    """Make ``channel`` hand over compressed messages without inflating them.

    Every kombu transport builds a delivery with ``channel.Message(raw, …)``,
    whose constructor inflates: the header is moved aside just before.
    """

    class Uninflated(channel.Message):  # type: ignore[name-defined,misc]
        def __init__(self, raw: Any, *args: Any, **kwargs: Any) -> None:
            headers = _raw_headers(raw)
            if headers and COMPRESSION_HEADER in headers:
                headers[REFUSED_COMPRESSION_HEADER] = str(headers.pop(COMPRESSION_HEADER))[:64]
            super().__init__(raw, *args, **kwargs)

    channel.Message = Uninflated


def _raw_headers(raw: Any) -> dict[str, Any] | None:
    """The headers of a raw delivery: py-amqp's properties, or kombu's virtual payload."""
    if isinstance(raw, dict):
        headers = raw.get("headers")
    else:
        headers = getattr(raw, "properties", {}).get("application_headers")
    return headers if isinstance(headers, dict) else None
