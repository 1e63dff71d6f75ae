"""TLS for tests: a CA and certificates made on the spot, and a TLS-terminating
proxy in front of a plain TCP service (the local RabbitMQ), as a broker's TLS
listener would be.

The proxy accepts TLS on 127.0.0.1 (``proxy.port``), optionally requires a
client certificate signed by its CA, and forwards the decrypted bytes to the
upstream; ``handshakes`` counts the TLS sessions that were established,
``failures`` those that were not.
"""

import contextlib
import datetime
import ipaddress
import pathlib
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_DAY = datetime.timedelta(days=1)


class Authority:
    """A certification authority whose files live in ``directory``."""

    def __init__(self, directory: pathlib.Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self._write(
            f"{name}-ca.pem", self._certificate.public_bytes(serialization.Encoding.PEM)
        )

    def issue(self, common_name: str, server: bool) -> tuple[str, str]:
        """(certificate file, key file) for 127.0.0.1 (server) or a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = (
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + _DAY)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return (
            self._write(f"{common_name}.pem", certificate.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{common_name}.key", key_bytes),
        )

    def _write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)


class TLSProxy:
    def __init__(
        self, upstream: tuple[str, int], cert: tuple[str, str], client_ca: str | None = None
    ) -> None:
        self.upstream = upstream
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(*cert)
        if client_ca:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(client_ca)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # closing does not wake a blocked accept(): poll instead
        self.port: int = self._listener.getsockname()[1]
        self.handshakes = 0
        self.failures: list[str] = []
        self._stopping = False
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="tls-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> "TLSProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._listener.close()
        for sock in list(self._sockets):
            _close(sock)
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self._context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError) as error:
            self.failures.append(str(error))
            _close(client)
            return
        self.handshakes += 1
        upstream = socket.create_connection(self.upstream)
        self._sockets += [secure, upstream]
        threading.Thread(target=_pump, args=(upstream, secure), daemon=True).start()
        _pump(secure, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
