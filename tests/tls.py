"""Certificate authorities and certificates made by a test (with ``cryptography``), written as PEM files.

What a cloud cluster hands its users, made locally: a CA, server
certificates for 127.0.0.1 (valid, or expired), client certificates for
mTLS, and an unrelated CA to be the wrong one. Keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Authority", "Issued"]

_NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk: ``cert`` (PEM), ``key`` (PKCS#8 PEM, 0600), ``both`` (key + chain)."""

    cert: Path
    key: Path
    both: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> bytes:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)
    return pem


class Authority:
    """A self-signed CA under ``directory`` (``<name>-ca.pem``) that issues certificates beside it."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} CA"))
            .issuer_name(_name(f"{name} CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - dt.timedelta(days=1))
            .not_valid_after(_NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self.cert = directory / f"{name}-ca.pem"
        self.cert.write_bytes(self.pem)

    def issue(
        self,
        common_name: str,
        *,
        server: bool,
        expired: bool = False,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    ) -> Issued:
        """A certificate for ``hosts`` (server) or a client, valid now unless ``expired``."""
        key = ec.generate_private_key(ec.SECP256R1())
        before, after = (
            (_NOW - dt.timedelta(days=10), _NOW - dt.timedelta(days=1))
            if expired
            else (
                _NOW - dt.timedelta(days=1),
                _NOW + dt.timedelta(days=30),
            )
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(before)
            .not_valid_after(after)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        stem = self.directory / f"{self.name}-{common_name}"
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        Path(f"{stem}.pem").write_bytes(cert_pem)
        key_pem = _write_key(Path(f"{stem}.key"), key)
        both = Path(f"{stem}-with-key.pem")
        both.write_bytes(key_pem + cert_pem + self.pem)
        both.chmod(0o600)
        return Issued(Path(f"{stem}.pem"), Path(f"{stem}.key"), both)
