"""The VPN configuration packages on the real board file: rendered files, secrets, certificates.

Runs the repository's own dodo.py and recipes with a board that holds only the configuration
packages (nothing to compile), a PKI directory and a secrets file in a temporary directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from support.doitrun import DoitRun, doit_env, run_doit

REPO = Path(__file__).resolve().parents[1]
VPN_PACKAGES = '["vpn-config", "vpn-secrets", "vpn-pki"]'


def board(tmp: Path, *, edit: dict[str, str] | None = None) -> Path:
    text = (REPO / "configs" / "siso.toml").read_text()
    text = re.sub(r"(?m)^packages = .*$", f"packages = {VPN_PACKAGES}", text)
    text = re.sub(r"(?ms)^\[tasks\.kernel_mppc\].*?\n\n", "", text)  # no kernel on this board
    text = re.sub(r"(?ms)^\[system\].*?\n\n", "", text)  # nor base-files, which reads it
    for old, new in (edit or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "board.toml"
    path.write_text(text)
    return path


def env_for(tmp: Path, board_file: Path) -> dict[str, str]:
    return doit_env(
        FWBUILD_BOARD=str(board_file),
        FWBUILD_BUILD_DIR=str(tmp / "build"),
        FWBUILD_OUTPUT_DIR=str(tmp / "output"),
        FWBUILD_PKI_DIR=str(tmp / "pki"),
        FWBUILD_SECRETS=str(tmp / "secrets" / "siso.toml"),
    )


def build(tmp: Path, **kw: dict[str, str]) -> DoitRun:
    return run_doit(REPO, "rootfs", env=env_for(tmp, board(tmp, **kw)))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DoitRun]:
    tmp = tmp_path_factory.mktemp("vpn")
    return tmp, build(tmp)


def test_builds_and_generates_secrets(built: tuple[Path, DoitRun]) -> None:
    tmp, run = built
    assert run.returncode == 0, run.output
    secrets = tmp / "secrets" / "siso.toml"
    assert secrets.stat().st_mode & 0o777 == 0o600
    passwords = tomllib.loads(secrets.read_text())["users"]
    assert set(passwords) == {"alice", "bob"} and all(len(p) >= 20 for p in passwords.values())
    assert str(secrets) in run.output
    for password in passwords.values():  # never in task output or the stamps/logs
        assert password not in run.output
        for f in (tmp / "build").rglob("*"):
            if f.is_file() and "staging" not in f.parts and "rootfs" not in f.parts:
                assert password.encode() not in f.read_bytes(), f


@pytest.mark.unit
def test_rendered_configs(built: tuple[Path, DoitRun]) -> None:
    tmp, _ = built
    etc = tmp / "build" / "rootfs" / "etc" / "sysconfig"
    racoon = (etc / "racoon.conf").read_text()
    assert 'path certificate "/etc/sysconfig/racoon";' in racoon
    assert "isakmp 192.168.1.1 [500];" in racoon
    assert 'certificate_type x509 "siso.vonk-cert.pem" "siso.vonk-key.pem";' in racoon
    assert "generate_policy on;" in racoon and "pfs_group" not in racoon
    # phase 1: today's clients' AES/SHA-2/MODP-2048 first, Windows XP's 3DES/SHA-1/MODP-1024 kept
    proposals = re.findall(
        r"proposal \{\s*encryption_algorithm ([^;]+);\s*hash_algorithm (\w+);\s*"
        r"authentication_method rsasig;\s*dh_group (\w+);\s*\}",
        racoon,
    )
    assert proposals[0] == ("aes 256", "sha256", "modp3072")
    for wanted in (("aes 128", "sha256", "modp3072"),  # strongSwan 5.9's IKEv1 default
                   ("aes 256", "sha256", "modp2048"),
                   ("aes 256", "sha1", "modp1024"), ("aes 128", "sha1", "modp1024"),
                   ("aes 128", "sha256", "modp2048"), ("3des", "sha1", "modp1024")):  # fmt: skip
        assert wanted in proposals, wanted
    assert proposals[-1] == ("3des", "sha1", "modp1024")
    assert racoon.count("proposal {") == len(proposals) == 14
    # phase 2: AES and 3DES, HMAC-SHA-256 and SHA-1
    assert "encryption_algorithm aes 256, aes 128, 3des;" in racoon
    assert "authentication_algorithm hmac_sha256, hmac_sha1, hmac_md5;" in racoon
    # no plaintext L2TP: ESP required both ways for UDP 1701, whoever the peer is
    setkey = (etc / "setkey.conf").read_text()
    policies = [line for line in setkey.splitlines() if line.startswith("spdadd")]
    assert policies == [
        "spdadd 0.0.0.0/0[any] 192.168.1.1[1701] udp -P in ipsec esp/transport//require;",
        "spdadd 192.168.1.1[1701] 0.0.0.0/0[any] udp -P out ipsec esp/transport//require;",
    ]
    l2tpd = (etc / "l2tpd.conf").read_text()
    keys = {line.split("=")[0].strip() for line in l2tpd.splitlines() if "=" in line}
    stock_069 = {"port", "ip range", "local ip", "require authentication", "name", "ppp debug",
                 "pppoptfile", "length bit"}  # fmt: skip
    assert keys <= stock_069, keys - stock_069
    assert "ip range = 192.168.50.10-192.168.50.50" in l2tpd and "name = siso.vonk" in l2tpd
    options = (etc / "ppp" / "options.l2tp").read_text().splitlines()
    assert "require-mschap-v2" in options and "name siso.vonk" in options
    assert "mppe required,stateless,no40,no56" in options and "mppc" in options  # mppc on
    assert "require-mppe-128" not in options


@pytest.mark.unit
def test_chap_secrets(built: tuple[Path, DoitRun]) -> None:
    tmp, _ = built
    path = tmp / "build" / "rootfs" / "etc" / "sysconfig" / "ppp" / "chap-secrets"
    assert path.stat().st_mode & 0o777 == 0o600
    rows = [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    passwords = tomllib.loads((tmp / "secrets" / "siso.toml").read_text())["users"]
    assert rows == [[u, "siso.vonk", passwords[u], "*"] for u in ("alice", "bob")]


@pytest.mark.unit
def test_certificates_and_hash_links(built: tuple[Path, DoitRun]) -> None:
    tmp, _ = built
    racoon = tmp / "build" / "rootfs" / "etc" / "sysconfig" / "racoon"
    for name in ("siso.vonk-cert.pem", "siso.vonk-key.pem", "CAcert.pem", "CRL.pem"):
        assert (racoon / name).stat().st_mode & 0o777 == 0o600
    assert b"BEGIN RSA PRIVATE KEY" in (racoon / "siso.vonk-key.pem").read_bytes()
    assert not list(racoon.glob("CAkey*"))  # the CA key never enters the image
    ca_key = (tmp / "pki" / "ca" / "CAkey.pem").read_bytes()
    for f in (tmp / "build" / "rootfs").rglob("*"):
        if f.is_file():
            assert ca_key not in f.read_bytes()
    new = subprocess.run(["openssl", "x509", "-noout", "-hash", "-in", str(racoon / "CAcert.pem")],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert os.readlink(racoon / f"{new}.0") == "CAcert.pem"
    assert os.readlink(racoon / f"{new}.r0") == "CRL.pem"
    verify = subprocess.run(
        ["openssl", "verify", "-CApath", str(racoon), "-crl_check_all",
         str(racoon / "siso.vonk-cert.pem"), str(tmp / "pki" / "certs" / "alice-cert.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (tmp / "pki" / "certs" / "alice.p12").stat().st_mode & 0o777 == 0o600
    assert (
        "AssumeUDPEncapsulationContextOnSendRule"
        in (tmp / "pki" / "certs" / "alice-windows-xp.txt").read_text()
    )


def _opens(bundle: Path, password: str) -> bool:
    """Whether OpenSSL's own pkcs12 command opens the bundle with that password."""
    run = subprocess.run(
        ["openssl", "pkcs12", "-in", str(bundle), "-noout", "-passin", "stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
    )
    return run.returncode == 0


def test_password_edit_rerenders_chap_secrets_and_remakes_that_users_bundle(
    built: tuple[Path, DoitRun],
) -> None:
    """A password is in chap-secrets and is the import password of the user's .p12 (named in
    the user's profiles): a change must reach both, and nothing else."""
    tmp, _ = built
    env = env_for(tmp, tmp / "board.toml")
    assert run_doit(REPO, "rootfs", env=env).ran == set()
    secrets = tmp / "secrets" / "siso.toml"
    text = secrets.read_text()
    old = re.search(r'(?m)^alice = "(.*)"$', text)
    assert old
    certs = tmp / "pki" / "certs"
    bob_before = (certs / "bob.p12").read_bytes()
    assert _opens(certs / "alice.p12", old[1])
    new = 'has space #and "quote"'
    secrets.write_text(
        re.sub(r'(?m)^alice = ".*"$', 'alice = "has space #and \\\\"quote\\\\""', text)
    )
    run = run_doit(REPO, "rootfs", env=env)
    assert run.returncode == 0, run.output
    assert run.ran == {"install:vpn-secrets", "install:vpn-pki", "rootfs"}
    chap = (tmp / "build/rootfs/etc/sysconfig/ppp/chap-secrets").read_text()
    assert 'alice\tsiso.vonk\t"has space #and \\"quote\\""\t*' in chap
    assert _opens(certs / "alice.p12", new) and not _opens(certs / "alice.p12", old[1])
    assert (certs / "alice-linux" / "p12-password").read_text() == new
    assert (certs / "alice-linux" / "alice.p12").read_bytes() == (certs / "alice.p12").read_bytes()
    assert (certs / "bob.p12").read_bytes() == bob_before  # only alice's was made again
    assert run_doit(REPO, "rootfs", env=env).ran == set()


def test_ca_survives_dirclean_and_rebuild(built: tuple[Path, DoitRun]) -> None:
    tmp, _ = built
    env = env_for(tmp, tmp / "board.toml")
    ca = (tmp / "pki" / "ca" / "CAcert.pem").read_bytes()
    assert run_doit(REPO, "dirclean:vpn-pki", env=env).returncode == 0
    again = run_doit(REPO, "rootfs", env=env)
    assert again.returncode == 0 and "install:vpn-pki" in again.ran
    assert (tmp / "pki" / "ca" / "CAcert.pem").read_bytes() == ca
    installed = (tmp / "build/rootfs/etc/sysconfig/racoon/CAcert.pem").read_bytes()
    assert installed == ca


POOL = 'client_pool = "192.168.50.10-192.168.50.50"'
BAD_SETTINGS = {
    "pool-outside": ({POOL: 'client_pool = "192.168.60.10-192.168.60.20"'},
                     "outside the server's PPP subnet"),
    "pool-has-server": ({POOL: 'client_pool = "192.168.50.1-192.168.50.20"'},
                        "contains the server's own PPP address"),
    "overlap-wan": ({'ppp_address = "192.168.50.1/24"': 'ppp_address = "192.168.1.200/24"',
                     POOL: 'client_pool = "192.168.1.210-192.168.1.220"'},
                    "overlaps the WAN subnet"),
    "unknown-variant": ({"mppc = true": "mppc = true\nmpcc = false"}, "[variants] mpcc"),
    "no-users": ({'users = ["alice", "bob"]': "users = []"}, "[vpn] users"),
    "legacy-not-bool": ({"legacy_proposals = true": 'legacy_proposals = "no"'},
                        "[vpn] legacy_proposals"),
}  # fmt: skip


@pytest.mark.parametrize(("edit", "message"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_are_named_before_anything_is_written(
    tmp_path: Path, edit: dict[str, str], message: str
) -> None:
    run = build(tmp_path, edit=edit)
    assert run.returncode != 0
    assert message in run.output and "board.toml" in run.output
    assert "Traceback" not in run.output
    assert not (tmp_path / "build" / "rootfs").exists()
    assert not (tmp_path / "pki").exists() and not (tmp_path / "secrets").exists()


def test_user_without_password_is_named(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets" / "siso.toml"
    secrets.parent.mkdir()
    secrets.write_text('[users]\nalice = "x"\n')
    secrets.chmod(0o600)
    run = build(tmp_path)
    assert run.returncode != 0
    assert "user 'bob'" in run.output and str(secrets) in run.output
    secrets.chmod(0o644)
    run = build(tmp_path)
    assert "readable by others" in run.output


def test_secret_pppd_cannot_read_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets" / "siso.toml"
    secrets.parent.mkdir()
    secrets.write_text('[users]\nalice = "@/etc/passwd"\nbob = "fine"\n')
    secrets.chmod(0o600)
    run = build(tmp_path)
    assert run.returncode != 0 and "'@/'" in run.output and "alice" in run.output


def test_stock_mppe_spelling_when_mppc_is_off(tmp_path: Path) -> None:
    run = build(tmp_path, edit={"mppc = true": "mppc = false"})
    assert run.returncode == 0, run.output
    options = (tmp_path / "build/rootfs/etc/sysconfig/ppp/options.l2tp").read_text().splitlines()
    assert "require-mppe-128" in options and "mppc" not in options


def test_without_legacy_proposals_only_aes_and_modp2048(tmp_path: Path) -> None:
    run = build(tmp_path, edit={"legacy_proposals = true": "legacy_proposals = false"})
    assert run.returncode == 0, run.output
    racoon = (tmp_path / "build/rootfs/etc/sysconfig/racoon.conf").read_text()
    assert racoon.count("proposal {") == 8
    assert racoon.count("dh_group modp2048;") == 4 == racoon.count("dh_group modp3072;")
    assert "3des" not in racoon and "modp1024" not in racoon and "hmac_md5" not in racoon
    assert "encryption_algorithm aes 256, aes 128;" in racoon
    assert "authentication_algorithm hmac_sha256, hmac_sha1;" in racoon


def test_revocation_and_crl_renewal(built: tuple[Path, DoitRun]) -> None:
    tmp, _ = built
    board_file = board(tmp, edit={"revoked = []": 'revoked = ["bob"]'})
    env = env_for(tmp, board_file)
    run = run_doit(REPO, "rootfs", env=env)
    assert run.returncode == 0, run.output
    assert "install:vpn-pki" in run.ran and "revoked bob" in run.output
    racoon = tmp / "build" / "rootfs" / "etc" / "sysconfig" / "racoon"
    bob = subprocess.run(
        ["openssl", "verify", "-CApath", str(racoon), "-crl_check_all",
         str(tmp / "pki" / "certs" / "bob-cert.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bob.returncode != 0 and "certificate revoked" in bob.stdout + bob.stderr
    crl = (tmp / "pki" / "ca" / "CRL.pem").read_bytes()
    renewed = run_doit(REPO, "renew-crl:vpn-pki", env=env)
    assert renewed.returncode == 0, renewed.output
    assert (tmp / "pki" / "ca" / "CRL.pem").read_bytes() != crl
    again = run_doit(REPO, "rootfs", env=env)  # the new CRL goes into the image
    assert again.ran == {"install:vpn-pki", "rootfs"}
    assert (racoon / "CRL.pem").read_bytes() == (tmp / "pki" / "ca" / "CRL.pem").read_bytes()


@pytest.mark.unit
def test_images_holding_secrets_are_private(built: tuple[Path, DoitRun]) -> None:
    tmp, _ = built
    output = tmp / "output"
    assert output.stat().st_mode & 0o777 == 0o700
    for image in ("rootfs.tar", "rootfs.cpio.gz", "rootfs.ext2"):
        assert (output / image).stat().st_mode & 0o777 == 0o600, image
