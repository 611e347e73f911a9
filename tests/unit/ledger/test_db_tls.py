"""The settings ``meridian.db`` gives libpq really verify the server (sslmode=verify-full).

A stand-in server on loopback speaks the start of PostgreSQL's protocol (it accepts the SSLRequest)
and then TLS with a certificate of a throwaway CA. libpq, through psycopg, must refuse it when the
settings trust the shipped RDS CAs (the certificate is not theirs), and when the CA is trusted but
the name does not match; it must complete the handshake when both hold. The bundle itself must be
the RDS roots, none expired.
"""

from __future__ import annotations

import datetime
import hashlib
import queue
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meridian.db import RDS_CA_BUNDLE, settings_from_env

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
BUNDLE_SHA256 = "26edf290f2d57ebbd5273fb9463b763497a47c14a4712d73ce47da8dc4ad57dc"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_ca_and_server(directory: Path, server_name: str) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Throwaway CA"))
        .issuer_name(_name("Throwaway CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(server_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


@dataclass
class StandIn:
    port: int
    ca: Path
    handshakes: queue.Queue[bool]  # one outcome per connection the server accepted


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[StandIn]:
    """A loopback server answering SSLRequest with 'S' and then TLS as ``localhost``."""
    ca, cert, key = _write_ca_and_server(tmp_path, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    handshakes: queue.Queue[bool] = queue.Queue()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    while True:
                        length, code = struct.unpack("!ii", conn.recv(8, socket.MSG_WAITALL))
                        if code == GSSENC_REQUEST:
                            conn.sendall(b"N")
                            continue
                        assert (length, code) == (8, SSL_REQUEST)
                        conn.sendall(b"S")
                        break
                    with context.wrap_socket(conn, server_side=True):
                        handshakes.put(True)  # then close: no PostgreSQL behind it
                except (OSError, ssl.SSLError, struct.error):
                    handshakes.put(False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield StandIn(listener.getsockname()[1], ca, handshakes)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _connect(stand_in: StandIn, host: str, **extra: str) -> str:
    env = {
        "DB_HOST": host,
        "DB_PORT": str(stand_in.port),
        "DB_USER": "meridian_ledger",
        "DB_REGION": "us-east-1",
    }
    env.update(extra)
    settings = settings_from_env(env, sign_token=lambda *_: "token")
    with pytest.raises(psycopg.OperationalError) as failure:
        psycopg.connect(settings.conninfo + " hostaddr=127.0.0.1 gssencmode=disable", connect_timeout=5)
    return str(failure.value)


def test_a_server_whose_certificate_no_rds_ca_signed_is_refused(stand_in: StandIn) -> None:
    message = _connect(stand_in, "localhost")
    assert "certificate verify failed" in message
    assert stand_in.handshakes.get(timeout=5) is False


def test_a_trusted_certificate_for_another_name_is_refused(stand_in: StandIn) -> None:
    message = _connect(stand_in, "ledger.example", DB_SSLROOTCERT=str(stand_in.ca))
    assert "ledger.example" in message
    assert "does not match" in message


def test_the_handshake_completes_with_the_right_ca_and_name(stand_in: StandIn) -> None:
    message = _connect(stand_in, "localhost", DB_SSLROOTCERT=str(stand_in.ca))
    # TLS was established; the stand-in then hangs up where PostgreSQL would authenticate.
    assert "certificate" not in message
    assert stand_in.handshakes.get(timeout=5) is True


def test_the_bundle_is_the_rds_roots_of_every_region_none_expired() -> None:
    assert hashlib.sha256(RDS_CA_BUNDLE.read_bytes()).hexdigest() == BUNDLE_SHA256
    certificates = x509.load_pem_x509_certificates(RDS_CA_BUNDLE.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    subjects = set()
    for certificate in certificates:
        assert certificate.subject == certificate.issuer  # self-signed roots
        assert certificate.not_valid_after_utc > now
        (common_name,) = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        subjects.add(str(common_name.value))
    for region in ("us-east-1", "us-west-2"):
        for kind in ("RSA2048", "RSA4096", "ECC384"):
            assert f"Amazon RDS {region} Root CA {kind} G1" in subjects
    assert len(certificates) == 87
    # The Python TLS stack accepts it as a CA file too.
    ssl.create_default_context(cafile=str(RDS_CA_BUNDLE))
