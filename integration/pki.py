"""A throwaway PKI for TLS tests: a CA and the leaf certificates it signs, as PEM files
(python3-cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """A test CA and leaf certificates it signs, written as PEM files."""

    def __init__(self, directory: Path, ca_stem: str = "ca"):
        self.dir = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name("sluice test CA"))
            .issuer_name(name("sluice test CA")).public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256()))
        self.ca_file = directory / f"{ca_stem}.crt"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, stem: str, names: list[str], expired: bool = False,
             subject: x509.Name | None = None, ips: tuple[str, ...] = ()) -> dict:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now - datetime.timedelta(days=10 if expired else 1)
        end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
        cert = (
            x509.CertificateBuilder().subject_name(subject or name(names[0]))
            .issuer_name(self.ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] +
                [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False)
            .sign(self.ca_key, hashes.SHA256()))
        cert_file, key_file = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.last_der = cert.public_bytes(serialization.Encoding.DER)
        return {"cert_file": str(cert_file), "key_file": str(key_file)}
