"""Throwaway certificates for the TLS tests (the `cryptography` package): a CA, and server
certificates it signs (or that sign themselves) for the names asked, written as PEM files.
Keys are ECDSA P-256, written mode 0600 by the user who runs the tests, which is the user
tests/slapd.py starts slapd as (no -u), so slapd can read them and nobody else can."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Ca:
    cert_file: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class ServerCert:
    cert_file: Path
    key_file: Path
    ca_file: Path  # the CA that signed it (itself when self-signed)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, key,
             expired: bool = False) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC) - (dt.timedelta(days=2) if expired else dt.timedelta())
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)))


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def make_ca(folder: Path, name: str = "sma test CA") -> Ca:
    """A CA certificate (and its key, kept in memory) written to folder/<name>.pem."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(_name(name), _name(name), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path = folder / f"{name.replace(' ', '-')}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(path, key, cert)


def make_server_cert(folder: Path, ca: Ca | None, dns: tuple[str, ...] = ("localhost",),
                     ips: tuple[str, ...] = ("127.0.0.1",), stem: str = "server",
                     expired: bool = False) -> ServerCert:
    """A server certificate for these names (subjectAltName DNS and IP), signed by `ca`, or
    by its own key when `ca` is None (expired the day before yesterday when asked);
    folder/<stem>.pem and folder/<stem>.key."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(dns[0] if dns else ips[0])
    issuer, signer = (ca.cert.subject, ca.key) if ca else (subject, key)
    names = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                              for i in ips]
    builder = (_builder(subject, issuer, key, expired)
               .add_extension(x509.SubjectAlternativeName(names), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False))
    if ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    cert_file, key_file = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_file, key)
    return ServerCert(cert_file, key_file, ca.cert_file if ca else cert_file)
