"""A small X.509 PKI with ``cryptography``: a CA, certificates, a CRL, OpenSSL hash links, PKCS#12.

Board knowledge (the VPN's certificates, Windows XP's IPsec quirks), so it lives beside the VPN
recipes that use it (``vpn-pki``), not in the generic engine.

The PKI directory lives outside the build tree (it is not a build product): the CA is created once
and then only ever read. Regenerating it would lock out every deployed client, so no build or
clean task deletes or replaces it. Layout::

    <pki>/ca/CAkey.pem     the CA's private key (0600; the directory 0700)
    <pki>/ca/CAcert.pem
    <pki>/ca/revoked.json  serials revoked so far, with dates and names
    <pki>/ca/CRL.pem
    <pki>/certs/<name>-cert.pem, <name>-key.pem (0600), <name>.p12 (0600)

Hash links are computed here, not by the ``openssl`` command: the "new" hash of OpenSSL ≥ 1.0
(SHA-1 of the canonical encoding of the name) and the "old" one of 0.9.x (MD5 of its DER).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fwbuild.errors import ConfigError

# The IKE intermediate EKU (RFC 4945 "iKEIntermediate"); Windows checks it on IPsec servers.
# cryptography's ExtendedKeyUsageOID.IPSEC_IKE is 1.3.6.1.5.5.7.3.17, a different OID.
IKE_INTERMEDIATE_OID = "1.3.6.1.5.5.8.2.2"

# --- OpenSSL subject hashes ----------------------------------------------------------------
_STRING_TAGS = {0x0C: "utf-8", 0x13: "latin-1", 0x14: "latin-1", 0x16: "latin-1",
                0x1A: "latin-1", 0x1C: "utf-32-be", 0x1E: "utf-16-be"}  # fmt: skip
_SPACE = b" \t\n\r\f\v"


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One TLV at ``pos``: (tag, value, next position)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, data[pos : pos + length], pos + length


def _der(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def _children(value: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, value, whole TLV) of each element of a constructed value."""
    out, pos = [], 0
    while pos < len(value):
        tag, inner, nxt = _der_read(value, pos)
        out.append((tag, inner, value[pos:nxt]))
        pos = nxt
    return out


def _canonical_string(tag: int, value: bytes) -> bytes | None:
    if tag not in _STRING_TAGS:
        return None
    text = value.decode(_STRING_TAGS[tag]).encode("utf-8")
    text = text.strip(_SPACE)
    folded = bytearray()
    for byte in text:
        if byte in _SPACE:
            if folded[-1:] != b" ":
                folded.append(0x20)
        else:
            folded.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
    return bytes(folded)


def canonical_name(name_der: bytes) -> bytes:
    """OpenSSL's x509_name_canon: each RDN a SET of canonical entries, no outer SEQUENCE."""
    tag, rdns, _ = _der_read(name_der, 0)
    assert tag == 0x30, "a Name is a SEQUENCE"
    out = bytearray()
    for _, rdn, _ in _children(rdns):
        entries = []
        for _, atv, _ in _children(rdn):
            (_, _, oid_tlv), (vtag, value, value_tlv) = _children(atv)[:2]
            canon = _canonical_string(vtag, value)
            encoded = value_tlv if canon is None else _der(0x0C, canon)
            entries.append(_der(0x30, oid_tlv + encoded))
        out += _der(0x31, b"".join(sorted(entries)))
    return bytes(out)


def subject_hash(name_der: bytes) -> str:
    """``openssl x509 -hash`` / ``openssl crl -hash`` (OpenSSL ≥ 1.0)."""
    digest = hashlib.sha1(canonical_name(name_der)).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def subject_hash_old(name_der: bytes) -> str:
    """``openssl x509 -subject_hash_old`` (OpenSSL 0.9.x)."""
    digest = hashlib.md5(name_der).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def hash_links(
    certificates: Sequence[tuple[str, bytes]], crls: Sequence[tuple[str, bytes]] = ()
) -> dict[str, str]:
    """Link name -> target for a hashed directory, both hash styles, collisions numbered.

    ``certificates`` are (file name, subject DER), ``crls`` (file name, issuer DER).
    """
    links: dict[str, str] = {}
    for kind, items in (("", certificates), ("r", crls)):
        for hasher in (subject_hash, subject_hash_old):
            for filename, name_der in items:
                base = hasher(name_der)
                n = 0
                while f"{base}.{kind}{n}" in links and links[f"{base}.{kind}{n}"] != filename:
                    n += 1
                links[f"{base}.{kind}{n}"] = filename
    return links


_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # OID 1.2.840.113549.1.1.11
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")  # OID 1.2.840.113549.1.1.5


def resign_sha1(der: bytes, key) -> bytes:
    """A certificate or CRL signed with sha256WithRSA, signed again with sha1WithRSA.

    ``cryptography`` refuses to sign with SHA-1, but Windows XP before SP3 cannot check SHA-256
    signatures. Both algorithm identifiers encode to 11 bytes, so swapping them keeps every
    length; the to-be-signed part is then signed again with PKCS#1 v1.5 and SHA-1.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    _, body, _ = _der_read(der, 0)
    (_, tbs_body, _), (_, _, algorithm), _ = _children(body)
    fields = [tlv for _, _, tlv in _children(tbs_body)]
    # the TBS part's own `signature` AlgorithmIdentifier: the first field that is exactly it
    index = next(i for i, f in enumerate(fields) if f.startswith(b"\x30") and _SHA256_RSA in f[:15])
    fields[index] = fields[index].replace(_SHA256_RSA, _SHA1_RSA)
    new_tbs = _der(0x30, b"".join(fields))
    signature = key.sign(new_tbs, padding.PKCS1v15(), hashes.SHA1())
    new_algorithm = algorithm.replace(_SHA256_RSA, _SHA1_RSA)
    return _der(0x30, new_tbs + new_algorithm + _der(0x03, b"\x00" + signature))


# --- the PKI ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    name: str  # file stem: <name>-cert.pem
    common_name: str
    kind: str  # "server" or "client"
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


def _write_private(path: Path, data: bytes) -> None:
    """Write a file that is 0600 from its first byte (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


class Pki:
    """The CA and what it issued, in ``root``. Nothing here ever deletes the CA."""

    def __init__(self, root: Path, *, ca_subject: dict[str, str], key_bits: int = 2048,
                 cert_days: int = 3650, crl_days: int = 3650,
                 signature: str = "sha256") -> None:  # fmt: skip
        if key_bits < 2048:
            raise ConfigError(f"PKI key size {key_bits} is too small; use 2048 or more")
        if signature not in ("sha256", "sha1"):
            raise ConfigError(
                f"PKI signature {signature!r} is neither sha256 nor sha1 (sha1 only for Windows "
                "XP before SP3, which cannot check SHA-256 signatures)"
            )
        self.signature = signature
        self.root = root
        self.ca_subject = ca_subject
        self.key_bits = key_bits
        self.cert_days = cert_days
        self.crl_days = crl_days

    # paths
    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca_key_path(self) -> Path:
        return self.ca_dir / "CAkey.pem"

    @property
    def ca_cert_path(self) -> Path:
        return self.ca_dir / "CAcert.pem"

    @property
    def crl_path(self) -> Path:
        return self.ca_dir / "CRL.pem"

    @property
    def revoked_path(self) -> Path:
        return self.ca_dir / "revoked.json"

    def cert_path(self, name: str) -> Path:
        return self.root / "certs" / f"{name}-cert.pem"

    def key_path(self, name: str) -> Path:
        return self.root / "certs" / f"{name}-key.pem"

    # helpers
    @staticmethod
    def _now() -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)

    def _name(self, common_name: str | None = None):  # -> x509.Name
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        oids = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
                "L": NameOID.LOCALITY_NAME, "O": NameOID.ORGANIZATION_NAME,
                "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}  # fmt: skip
        subject = dict(self.ca_subject)
        if common_name is not None:
            subject["CN"] = common_name
        attrs = []
        for key, value in subject.items():
            if key not in oids:
                raise ConfigError(f"PKI subject key {key!r} is not one of {sorted(oids)}")
            attrs.append(x509.NameAttribute(oids[key], value))
        return x509.Name(attrs)

    def _new_key(self):
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.generate_private_key(public_exponent=65537, key_size=self.key_bits)

    @staticmethod
    def _key_pem(key) -> bytes:
        from cryptography.hazmat.primitives import serialization

        # "BEGIN RSA PRIVATE KEY", unencrypted: what the seed installs and every racoon reads
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def _signed_pem(self, obj, key, label: str) -> bytes:
        """PEM of a certificate or CRL, re-signed with SHA-1 when the board asks for it."""
        import base64

        from cryptography.hazmat.primitives import serialization

        der = obj.public_bytes(serialization.Encoding.DER)
        if self.signature == "sha1":
            der = resign_sha1(der, key)
        body = base64.encodebytes(der).replace(b"\n", b"")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return b"".join([f"-----BEGIN {label}-----\n".encode(), *(ln + b"\n" for ln in lines),
                         f"-----END {label}-----\n".encode()])  # fmt: skip

    # the CA
    def ensure_ca(self) -> bool:
        """Create the CA if there is none; returns True when it was created now."""
        if self.ca_key_path.exists() or self.ca_cert_path.exists():
            if not (self.ca_key_path.exists() and self.ca_cert_path.exists()):
                raise ConfigError(
                    f"the CA in {self.ca_dir} is incomplete (one of CAkey.pem/CAcert.pem is "
                    "missing); restore it from your backup. It is never recreated automatically: "
                    "a new CA would lock out every deployed client"
                )
            return False
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        self.root.mkdir(parents=True, exist_ok=True)
        self.ca_dir.mkdir(mode=0o700, exist_ok=True)
        self.ca_dir.chmod(0o700)
        key = self._new_key()
        name = self._name()
        now = self._now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=self.cert_days * 2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key_path, self._key_pem(key))
        _write_public(self.ca_cert_path, self._signed_pem(cert, key, "CERTIFICATE"))
        return True

    def _ca(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        return key, cert

    # certificates
    def ensure_certificate(self, ident: Identity) -> bool:
        """Issue the certificate unless a valid one from this CA exists; True when issued now.

        A revoked certificate is kept as it is: no build silently gives a revoked user a new
        one. To reissue, delete that user's files under certs/ deliberately.
        """
        from cryptography import x509

        cert_path, key_path = self.cert_path(ident.name), self.key_path(ident.name)
        ca_key, ca_cert = self._ca()
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if self.is_revoked(cert.serial_number):
                return False
            if (
                cert.issuer == ca_cert.subject
                and cert.subject == self._name(ident.common_name)
                and cert.not_valid_after_utc > self._now() + dt.timedelta(days=30)
            ):
                return False
        self._issue(ident, ca_key, ca_cert)
        return True

    def _issue(self, ident: Identity, ca_key, ca_cert) -> None:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

        key = self._new_key()
        now = self._now()
        if ident.kind == "server":
            usages = [ExtendedKeyUsageOID.SERVER_AUTH, ObjectIdentifier(IKE_INTERMEDIATE_OID)]
        elif ident.kind == "client":
            usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ObjectIdentifier(IKE_INTERMEDIATE_OID)]
        else:
            raise ConfigError(f"certificate kind {ident.kind!r} is neither server nor client")
        alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in ident.dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ident.ip_addresses]
        builder = (
            x509.CertificateBuilder()
            .subject_name(self._name(ident.common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=self.cert_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_private(self.key_path(ident.name), self._key_pem(key))
        _write_public(self.cert_path(ident.name), self._signed_pem(cert, ca_key, "CERTIFICATE"))

    # revocation
    def revoked(self) -> list[dict[str, object]]:
        try:
            return json.loads(self.revoked_path.read_text())
        except FileNotFoundError:
            return []

    def is_revoked(self, serial: int) -> bool:
        return any(r["serial"] == serial for r in self.revoked())

    def is_revoked_name(self, name: str) -> bool:
        """Whether the current certificate of ``name`` is revoked."""
        from cryptography import x509

        path = self.cert_path(name)
        if not path.exists():
            return False
        return self.is_revoked(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)

    def revoke(self, name: str) -> int:
        from cryptography import x509

        path = self.cert_path(name)
        if not path.exists():
            raise ConfigError(f"cannot revoke {name!r}: {path} does not exist")
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        entries = self.revoked()
        if not self.is_revoked(cert.serial_number):
            entries.append(
                {"serial": cert.serial_number, "name": name, "date": self._now().isoformat()}
            )
            _write_public(self.revoked_path, (json.dumps(entries, indent=1) + "\n").encode())
        self.write_crl()
        return cert.serial_number

    def crl_needs_renewal(self, margin_days: int = 365) -> bool:
        from cryptography import x509

        if not self.crl_path.exists():
            return True
        crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
        listed = {r.serial_number for r in crl}
        wanted = {int(r["serial"]) for r in self.revoked()}  # type: ignore[call-overload]
        next_update = crl.next_update_utc
        return (
            listed != wanted
            or next_update is None
            or next_update < self._now() + dt.timedelta(days=margin_days)
        )

    def write_crl(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        ca_key, ca_cert = self._ca()
        now = self._now()
        number = 1  # RFC 5280 CRL number: every CRL this CA issues has a larger one
        if self.crl_path.exists():
            old = x509.load_pem_x509_crl(self.crl_path.read_bytes())
            try:
                number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
            except x509.ExtensionNotFound:
                number = 2
        builder = (
            x509.CertificateRevocationListBuilder()
            .add_extension(x509.CRLNumber(number), critical=False)
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            # An expired CRL locks every client out of racoon: make it long-lived.
            .next_update(now + dt.timedelta(days=self.crl_days))
        )
        for entry in self.revoked():
            date = dt.datetime.fromisoformat(str(entry["date"]))
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry["serial"]))  # type: ignore[call-overload]
                .revocation_date(date)
                .build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        _write_public(self.crl_path, self._signed_pem(crl, ca_key, "X509 CRL"))

    def ensure_crl(self) -> bool:
        if self.crl_needs_renewal():
            self.write_crl()
            return True
        return False

    # client bundles
    def pkcs12(self, name: str, password: str) -> Path:
        """A PKCS#12 bundle Windows XP can import: 3DES (PBEv1 SHA1) and a SHA-1 MAC."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        key = serialization.load_pem_private_key(self.key_path(name).read_bytes(), None)
        cert = x509.load_pem_x509_certificate(self.cert_path(name).read_bytes())
        _, ca_cert = self._ca()
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password.encode())
        )
        data = pkcs12.serialize_key_and_certificates(
            name.encode(),
            key,
            cert,
            [ca_cert],
            encryption,  # type: ignore[arg-type]
        )
        path = self.root / "certs" / f"{name}.p12"
        _write_private(path, data)
        return path
