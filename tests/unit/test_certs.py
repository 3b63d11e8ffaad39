"""The local CA: a server certificate for the loopback names and client certificates whose
subject carries the identity and its roles; keys private to their owner."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from rowcast.security.certs import identity_fields, init_ca, issue_client_cert
from rowcast.security.identity import Role


def test_init_makes_a_ca_and_a_server_certificate_it_signed(tmp_path: Path) -> None:
    assert init_ca(tmp_path)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)][:1] == ["127.0.0.1"]
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600


def test_init_keeps_an_existing_ca_unless_forced(tmp_path: Path) -> None:
    init_ca(tmp_path)
    first = (tmp_path / "ca.pem").read_bytes()
    assert not init_ca(tmp_path)
    assert (tmp_path / "ca.pem").read_bytes() == first
    assert init_ca(tmp_path, force=True)
    assert (tmp_path / "ca.pem").read_bytes() != first


def test_a_client_certificate_names_its_identity_and_roles(tmp_path: Path) -> None:
    init_ca(tmp_path)
    paths = issue_client_cert(
        tmp_path, "svc-a", frozenset({Role.PREDICTOR, Role.READER}), tmp_path / "c"
    )
    assert identity_fields(paths.cert.read_bytes()) == ("svc-a", ["predictor", "reader"])
    ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    x509.load_pem_x509_certificate(paths.cert.read_bytes()).verify_directly_issued_by(ca)
