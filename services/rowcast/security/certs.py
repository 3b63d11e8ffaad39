"""A local certificate authority for rowcast's TLS, made with the `cryptography` package:
`rowcast certs init` writes ca.pem (the CA), ca-key.pem, server.pem and server-key.pem under
ROWCAST_HOME/tls/; `rowcast certs issue` signs client certificates for mTLS, whose subject
names the identity (CN) and its roles (one OU each).

Keys are EC P-256 (what every gRPC TLS stack accepts), written with mode 0600. Rotation: write
new files (`rowcast certs init --force`, or files from your own CA) and restart the servers one
at a time; a server re-reads its certificate and key on SIGHUP too (docs/security.md)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rowcast.security.identity import Role

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
CERT_DAYS = 365


@dataclass(frozen=True)
class CertPaths:
    ca: Path
    cert: Path
    key: Path


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (replacing what was there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def init_ca(tls_dir: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, force: bool = False) -> bool:
    """Create the CA and the servers' certificate under tls_dir; False (nothing written) when
    a CA is there already and not `force`."""
    if (tls_dir / CA_FILE).exists() and not force:
        return False
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rowcast local CA")])
    now = _now()
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(tls_dir / CA_KEY_FILE, _key_pem(ca_key))
    (tls_dir / CA_FILE).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert, key = _signed(ca, ca_key, "rowcast server", (), hosts, server=True)
    write_private(tls_dir / SERVER_KEY_FILE, key)
    (tls_dir / SERVER_CERT_FILE).write_bytes(cert)
    return True


def issue_client_cert(tls_dir: Path, name: str, roles: frozenset[Role], out_dir: Path) -> CertPaths:
    """A client certificate for `name` with `roles`, signed by the CA in tls_dir, written to
    out_dir/<name>.pem and <name>-key.pem."""
    ca = x509.load_pem_x509_certificate((tls_dir / CA_FILE).read_bytes())
    ca_key = serialization.load_pem_private_key((tls_dir / CA_KEY_FILE).read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{tls_dir / CA_KEY_FILE} is not an EC private key")
    cert, key = _signed(ca, ca_key, name, sorted(r.value for r in roles), (), server=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(tls_dir / CA_FILE, out_dir / f"{name}.pem", out_dir / f"{name}-key.pem")
    write_private(paths.key, key)
    paths.cert.write_bytes(cert)
    return paths


def _signed(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    units: Iterable[str],
    hosts: Iterable[str],
    *,
    server: bool,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            *(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units),
        ]
    )
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def identity_fields(pem: bytes) -> tuple[str, list[str]]:
    """(common name, organizational units) of a certificate's subject."""
    cert = x509.load_pem_x509_certificate(pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return (str(cn[0].value) if cn else ""), [str(u.value) for u in units]
