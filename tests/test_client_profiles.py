"""Each user's client profiles (recipes/_profiles.py), checked against their formats.

The Linux profile is what tests/test_real_clients.py connects with; here: the macOS/iOS
.mobileconfig parses as a property list and carries the payloads and keys an L2TP profile with a
certificate needs; the Windows script parses as PowerShell (tree-sitter's PowerShell grammar,
which flags an unclosed string, brace or parenthesis as an error node) and calls
Import-PfxCertificate and Add-VpnConnection with the required parameters; the bundles inside open
with the user's password; and every file holding a password is private to its user.
"""

from __future__ import annotations

import base64
import configparser
import plistlib
import re
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from support.doitrun import DoitRun
from test_vpn import build

# bob's password has everything PowerShell, pppd and XML treat specially
BOB = 'it\'s "$(evil)" `n <&> #x'


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DoitRun]:
    tmp = tmp_path_factory.mktemp("profiles")
    secrets = tmp / "secrets" / "siso.toml"
    secrets.parent.mkdir()
    bob = BOB.replace("\\", "\\\\").replace('"', '\\"')
    secrets.write_text(f'[users]\nalice = "alice-Secret-1"\nbob = "{bob}"\n')
    secrets.chmod(0o600)
    return tmp, build(tmp)


def certs(built: tuple[Path, DoitRun]) -> Path:
    tmp, run = built
    assert run.returncode == 0, run.output
    return tmp / "pki" / "certs"


PASSWORDS = {"alice": "alice-Secret-1", "bob": BOB}


def powershell_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def test_every_user_gets_private_profiles(built: tuple[Path, DoitRun]) -> None:
    d = certs(built)
    for user, password in PASSWORDS.items():
        linux = d / f"{user}-linux"
        files = [d / f"{user}-windows.ps1", d / f"{user}.mobileconfig",
                 *(f for f in linux.rglob("*") if f.is_file())]  # fmt: skip
        assert len(files) > 10
        for f in files:
            mode = f.stat().st_mode & 0o777
            assert mode == (0o700 if f.suffix == ".sh" else 0o600), (f, oct(mode))
        for directory in (linux, *(p for p in linux.rglob("*") if p.is_dir())):
            assert directory.stat().st_mode & 0o777 == 0o700, directory
        # a password is in its user's files only (never in another user's, never in the CA's)
        for f in d.parent.rglob("*"):
            if f.is_file() and password.encode() in f.read_bytes():
                assert (
                    f.name.startswith(f"{user}-")
                    or f"{user}-linux" in f.parts
                    or (f.name == f"{user}.mobileconfig")
                ), f
    _, run = built
    for password in PASSWORDS.values():
        assert password not in run.output


@pytest.mark.unit
def test_mobileconfig_is_an_l2tp_profile_with_the_certificate(
    built: tuple[Path, DoitRun],
) -> None:
    d = certs(built)
    ca = x509.load_pem_x509_certificate((d.parent / "ca" / "CAcert.pem").read_bytes())
    for user, password in PASSWORDS.items():
        profile = plistlib.loads((d / f"{user}.mobileconfig").read_bytes())
        assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
        payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
        assert set(payloads) == {"com.apple.security.root", "com.apple.security.pkcs12",
                                 "com.apple.vpn.managed"}  # fmt: skip
        for p in (profile, *payloads.values()):
            assert {"PayloadIdentifier", "PayloadUUID", "PayloadVersion"} <= set(p), p.keys()
        uuids = [p["PayloadUUID"] for p in (profile, *payloads.values())]
        assert len(set(uuids)) == len(uuids)
        assert payloads["com.apple.security.root"]["PayloadContent"] == ca.public_bytes(
            Encoding.DER
        )
        bundle = payloads["com.apple.security.pkcs12"]
        assert bundle["Password"] == password
        key, cert, _ = pkcs12.load_key_and_certificates(bundle["PayloadContent"], password.encode())
        assert key is not None and cert is not None
        assert cert.public_bytes(Encoding.PEM) == (d / f"{user}-cert.pem").read_bytes()
        vpn = payloads["com.apple.vpn.managed"]
        assert vpn["VPNType"] == "L2TP"
        assert vpn["PPP"]["CommRemoteAddress"] == "192.168.1.1"
        assert vpn["PPP"]["AuthName"] == user and vpn["PPP"]["AuthPassword"] == password
        assert vpn["IPSec"]["AuthenticationMethod"] == "Certificate"
        assert vpn["IPSec"]["PayloadCertificateUUID"] == bundle["PayloadUUID"]


def _single_quoted(script: str, variable: str) -> str:
    """The value of ``$variable = '…'`` (or of its -String '…'), undoing PowerShell's ''."""
    m = re.search(rf"(?m)^\${variable} = [^'\n]*'((?:[^']|'')*)'", script)
    assert m, variable
    return m.group(1).replace("''", "'")


@pytest.mark.unit
def test_windows_script_parses_as_powershell_and_sets_up_l2tp(
    built: tuple[Path, DoitRun],
) -> None:
    d = certs(built)
    parser = powershell_parser()
    for user, password in PASSWORDS.items():
        raw = (d / f"{user}-windows.ps1").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Windows PowerShell 5.1 reads it so
        script = raw[3:].decode()
        tree = parser.parse(script.encode())
        assert not tree.root_node.has_error, str(tree.root_node)[:2000]
        # the commands, with their continuation lines joined
        flat = re.sub(r" *`\r?\n\s*", " ", script)
        imports = r"(?m)^\s*Import-PfxCertificate -FilePath \$Bundle -CertStoreLocation "
        assert re.search(imports + r"'Cert:\\LocalMachine\\My' -Password \$Password", flat)
        add = re.search(r"(?m)^Add-VpnConnection .*$", flat)
        assert add, flat
        for parameter in ("-ServerAddress $Server", "-TunnelType L2tp",
                          "-AuthenticationMethod MSChapv2",
                          "-EncryptionLevel Required"):  # fmt: skip
            assert parameter in add.group(0), parameter
        assert "AssumeUDPEncapsulationContextOnSendRule" in flat and "PolicyAgent" in flat
        # the password survives PowerShell's quoting and opens the embedded bundle
        assert _single_quoted(script, "Password") == password
        assert _single_quoted(script, "Server") == "192.168.1.1"
        blob = re.search(r"FromBase64String\('([A-Za-z0-9+/=]+)'\)", script)
        assert blob
        _, cert, _ = pkcs12.load_key_and_certificates(
            base64.b64decode(blob.group(1)), password.encode()
        )
        assert (
            cert is not None
            and cert.public_bytes(Encoding.PEM) == (d / f"{user}-cert.pem").read_bytes()
        )


@pytest.mark.unit
def test_the_powershell_check_catches_broken_scripts(built: tuple[Path, DoitRun]) -> None:
    """The parser check is not vacuous: the same script with one quote or brace gone fails."""
    script = (certs(built) / "bob-windows.ps1").read_bytes()[3:].decode()
    parser = powershell_parser()
    unquoted = script.replace("''", "'", 1)  # bob's password, its ' no longer doubled
    unbalanced = script.replace("} finally {", " finally {", 1)
    for broken in (unquoted, unbalanced):
        assert broken != script
        assert parser.parse(broken.encode()).root_node.has_error


@pytest.mark.unit
def test_linux_profile_uses_client_defaults(built: tuple[Path, DoitRun]) -> None:
    d = certs(built)
    linux = d / "alice-linux"
    server = x509.load_pem_x509_certificate((d / "siso.vonk-cert.pem").read_bytes())
    subject = ", ".join(
        f"{a.rfc4514_attribute_name}={a.value}" for a in server.subject
    )  # encoding order, as strongSwan and libreswan write it
    strongswan = (linux / "strongswan" / "ipsec.conf").read_text()
    assert f'rightid="{subject}"' in strongswan and "right=192.168.1.1" in strongswan
    assert "keyexchange=ikev1" in strongswan and "type=transport" in strongswan
    libreswan = (linux / "libreswan" / "siso.vonk.conf").read_text()
    assert f'rightid="{subject}"' in libreswan and "ikev2=no" in libreswan
    for conf in (strongswan, libreswan):  # the clients' own proposals, nothing pinned
        assert not re.search(r"(?m)^\s*(ike|esp|phase2alg)=", conf)
    assert (linux / "strongswan" / "alice-key.pem").read_bytes() == (
        d / "alice-key.pem"
    ).read_bytes()
    xl2tpd = (linux / "xl2tpd.conf").read_text()
    assert "lns = 192.168.1.1" in xl2tpd and "tx bps" not in xl2tpd  # l2tpd accepts speed 0
    options = (linux / "options.l2tpd.siso.vonk").read_text().splitlines()
    assert {"require-mschap-v2", "require-mppe-128", "user alice",
            "password alice-Secret-1"} <= set(options)  # fmt: skip
    bob = (d / "bob-linux" / "options.l2tpd.siso.vonk").read_text()
    assert 'password "it\'s \\"$(evil)\\" `n <&> #x"' in bob  # pppd's quoting
    nm = configparser.ConfigParser(interpolation=None)
    nm.read(linux / "networkmanager" / "siso.vonk.nmconnection")
    assert nm["connection"]["type"] == "vpn"
    vpn = nm["vpn"]
    assert vpn["service-type"] == "org.freedesktop.NetworkManager.l2tp"
    assert vpn["gateway"] == "192.168.1.1" and vpn["user"] == "alice"
    assert vpn["ipsec-enabled"] == "yes" and vpn["machine-auth-type"] == "tls"
    assert vpn["ipsec-remote-id"] == subject and vpn["require-mppe-128"] == "yes"
    assert nm["vpn-secrets"]["password"] == "alice-Secret-1"
