"""The PKI against the openssl command as the oracle: hashes, hash links, verify, CRL, PKCS#12."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from fwbuild.errors import ConfigError

# The PKI is board knowledge: a helper module of the VPN recipes, imported as they import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from _pki import Identity, Pki, hash_links, subject_hash, subject_hash_old

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

SUBJECT = {"C": "NL", "O": "Vonk", "CN": "SISO test CA"}


def openssl(*args: str, input: bytes | None = None) -> str:
    result = subprocess.run([need("openssl"), *args], capture_output=True, input=input, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki") / "siso", ca_subject=SUBJECT)
    assert pki.ensure_ca() is True
    pki.ensure_certificate(Identity("siso.vonk", "siso.vonk", "server", dns_names=("siso.vonk",)))
    pki.ensure_certificate(Identity("alice", "alice", "client"))
    pki.ensure_certificate(Identity("mallory", "mallory", "client"))
    pki.revoke("mallory")
    return pki


def _name_cert(tmp: Path, attrs: list[x509.NameAttribute]) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    name = x509.Name(attrs)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    path = tmp / f"cert{len(list(tmp.iterdir()))}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(
    "attrs",
    [
        [x509.NameAttribute(NameOID.COMMON_NAME, "SISO")],
        [x509.NameAttribute(NameOID.COMMON_NAME, "  Mixed   Case\tName  ")],
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL", _ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vonk B.V.", _ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.COMMON_NAME, "VPN Server"),
        ],
        [x509.NameAttribute(NameOID.COMMON_NAME, "Ünïcode ÄÖ café")],
        [x509.NameAttribute(NameOID.EMAIL_ADDRESS, "Admin@Example.ORG", _ASN1Type.IA5String)],
        [x509.NameAttribute(NameOID.COMMON_NAME, "bmp Name", _ASN1Type.BMPString)],
    ],
    ids=["simple", "spaces-case", "printable", "unicode", "ia5-email", "bmpstring"],
)
def test_subject_hashes_match_openssl(tmp_path: Path, attrs: list[x509.NameAttribute]) -> None:
    path = _name_cert(tmp_path, attrs)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    der = cert.subject.public_bytes()
    assert subject_hash(der) == openssl("x509", "-noout", "-hash", "-in", str(path)).strip()
    old = openssl("x509", "-noout", "-subject_hash_old", "-in", str(path)).strip()
    assert subject_hash_old(der) == old


def test_ca_is_private_and_never_recreated(pki: Pki) -> None:
    assert pki.ca_key_path.stat().st_mode & 0o777 == 0o600
    assert pki.ca_dir.stat().st_mode & 0o777 == 0o700
    assert pki.key_path("siso.vonk").stat().st_mode & 0o777 == 0o600
    before = pki.ca_cert_path.read_bytes()
    assert pki.ensure_ca() is False
    assert pki.ca_cert_path.read_bytes() == before
    assert pki.ensure_certificate(Identity("alice", "alice", "client")) is False  # reused


def test_incomplete_ca_is_an_error_not_a_new_ca(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "p", ca_subject=SUBJECT)
    pki.ensure_ca()
    pki.ca_key_path.unlink()
    with pytest.raises(ConfigError, match="incomplete"):
        pki.ensure_ca()
    assert not pki.ca_key_path.exists()


def test_hash_links_verify_with_openssl(pki: Pki, tmp_path: Path) -> None:
    hashed = tmp_path / "racoon"
    hashed.mkdir()
    (hashed / "CAcert.pem").write_bytes(pki.ca_cert_path.read_bytes())
    (hashed / "CRL.pem").write_bytes(pki.crl_path.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert_path.read_bytes())
    crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    links = hash_links(
        [("CAcert.pem", ca.subject.public_bytes())], [("CRL.pem", crl.issuer.public_bytes())]
    )
    for link, target in links.items():
        os.symlink(target, hashed / link)
    new = openssl("x509", "-noout", "-hash", "-in", str(pki.ca_cert_path)).strip()
    old = openssl("x509", "-noout", "-subject_hash_old", "-in", str(pki.ca_cert_path)).strip()
    crl_hash = openssl("crl", "-noout", "-hash", "-in", str(pki.crl_path)).strip()
    assert links == {
        f"{new}.0": "CAcert.pem",
        f"{old}.0": "CAcert.pem",
        f"{crl_hash}.r0": "CRL.pem",
        f"{old}.r0": "CRL.pem",
    }
    for name in ("siso.vonk", "alice"):
        out = openssl("verify", "-CApath", str(hashed), "-crl_check_all", str(pki.cert_path(name)))
        assert out.strip().endswith(": OK")
    revoked = subprocess.run(
        ["openssl", "verify", "-CApath", str(hashed), "-crl_check_all",
         str(pki.cert_path("mallory"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr


def test_hash_collisions_are_numbered() -> None:
    same = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twin")]).public_bytes()
    links = hash_links([("a.pem", same), ("b.pem", same)])
    h = subject_hash(same)
    assert links[f"{h}.0"] == "a.pem" and links[f"{h}.1"] == "b.pem"


def test_server_certificate_names_and_usages(pki: Pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.cert_path("siso.vonk").read_bytes())
    text = openssl("x509", "-noout", "-text", "-in", str(pki.cert_path("siso.vonk")))
    assert "TLS Web Server Authentication" in text and "1.3.6.1.5.5.8.2.2" in text
    assert "DNS:siso.vonk" in text
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_crl_is_long_lived_and_lists_revoked(pki: Pki) -> None:
    import datetime as dt

    crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    assert crl.next_update_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=3000)
    mallory = x509.load_pem_x509_certificate(pki.cert_path("mallory").read_bytes())
    assert [r.serial_number for r in crl] == [mallory.serial_number]
    assert pki.crl_needs_renewal() is False


def test_pkcs12_for_windows_xp_uses_3des_and_sha1(pki: Pki) -> None:
    path = pki.pkcs12("alice", "import-me")
    assert path.stat().st_mode & 0o777 == 0o600
    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-legacy", "-noout", "-in", str(path),
         "-passin", "pass:import-me"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    report = info.stdout + info.stderr
    assert "MAC: sha1" in report
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in report
    assert "AES" not in report


def test_revoked_certificate_is_not_silently_reissued(pki: Pki) -> None:
    before = pki.cert_path("mallory").read_bytes()
    assert pki.ensure_certificate(Identity("mallory", "mallory", "client")) is False
    assert pki.cert_path("mallory").read_bytes() == before


def test_every_crl_has_a_larger_number(pki: Pki) -> None:
    def number() -> int:
        crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    before = number()
    pki.write_crl()
    assert number() == before + 1


def test_sha1_signatures_for_windows_xp_before_sp3(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "xp", ca_subject=SUBJECT, signature="sha1")
    pki.ensure_ca()
    pki.ensure_certificate(Identity("server", "server", "server"))
    pki.ensure_certificate(Identity("old", "old", "client"))
    pki.revoke("old")
    for path in (pki.ca_cert_path, pki.cert_path("server")):
        text = openssl("x509", "-noout", "-text", "-in", str(path))
        assert "Signature Algorithm: sha1WithRSAEncryption" in text
        assert "sha256" not in text.lower()
    assert "sha1WithRSAEncryption" in openssl("crl", "-noout", "-text", "-in", str(pki.crl_path))
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    for name, src in (("CAcert.pem", pki.ca_cert_path), ("CRL.pem", pki.crl_path)):
        (hashed / name).write_bytes(src.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert_path.read_bytes())
    for link, target in hash_links([("CAcert.pem", ca.subject.public_bytes())],
                                   [("CRL.pem", ca.subject.public_bytes())]).items():  # fmt: skip
        os.symlink(target, hashed / link)
    ok = openssl("verify", "-CApath", str(hashed), "-crl_check_all", str(pki.cert_path("server")))
    assert ok.strip().endswith(": OK")  # the signatures check out (OpenSSL's own verifier)
    revoked = subprocess.run(
        ["openssl", "verify", "-CApath", str(hashed), "-crl_check_all", str(pki.cert_path("old"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    with pytest.raises(ConfigError, match="neither sha256 nor sha1"):
        Pki(tmp_path / "bad", ca_subject=SUBJECT, signature="md5")
