"""A self-signed certificate for trying Porchlight from a phone on the same network
(`porchlight demo --https`). Browsers give a page the camera and microphone only over https
(or on localhost), so a phone needs https; in production TLS terminates in front of the server.

The certificate is made once into `<data dir>/tls/` (the key mode 600) and reused while it is
valid and names the address; the phone's browser warns once that it does not know the issuer.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 90


def lan_address() -> str:
    """This machine's address on its local network (the one a phone on the same Wi-Fi reaches);
    127.0.0.1 when it has none. No packet is sent: connecting a UDP socket only picks a route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached, only routed
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _names(cert: x509.Certificate) -> set[str]:
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)} | set(alt.get_values_for_type(x509.DNSName))


def self_signed(directory: Path, address: str, now: datetime | None = None) -> tuple[Path, Path]:
    """The certificate and key files for `address` (and localhost), made if missing or stale."""
    now = now or datetime.now(UTC)
    folder = directory / "tls"
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if address in _names(current) and current.not_valid_after_utc > now + timedelta(days=1):
            return cert_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Porchlight demo")])
    addresses = {ipaddress.ip_address("127.0.0.1")}
    try:
        addresses.add(ipaddress.ip_address(address))
        dns = ["localhost"]
    except ValueError:
        dns = ["localhost", address]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(d) for d in dns] + [x509.IPAddress(ip) for ip in sorted(addresses, key=str)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context
