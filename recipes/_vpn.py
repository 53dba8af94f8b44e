"""What the VPN recipes share: the board's [vpn]/[network]/[pki]/[secrets] settings (their
schema is recipes/_settings.py), the passwords file, and the file formats' quoting rules. Not a
recipe itself (the leading underscore keeps it off the board).

The board is read through the package (``pkg.setting(section)``), which refuses a section the
recipe does not declare in ``board_sections``: every section a helper here reads is then part of
the calling package's key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets as random_secrets
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwbuild.errors import ConfigError
from fwbuild.recipe import Package

# Characters pppd's getword() treats specially inside a word; a word with any of them, or with
# white space, must be quoted (it honours "…" with backslash escapes).
_PPPD_SPECIAL = set(" \t\"'#\\")


def pppd_word(word: str, *, what: str) -> str:
    """A word for pppd's secrets/options parser, quoted when it has to be."""
    if not word:
        raise ConfigError(f"{what} is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in word):
        raise ConfigError(
            f"{what} contains a control character (newline, tab…); pppd cannot read it"
        )
    if word.startswith("@/"):
        # pppd reads "@/path" as "the secret is in that file", quoted or not.
        raise ConfigError(f"{what} starts with '@/', which pppd takes as a file name; change it")
    if not (_PPPD_SPECIAL & set(word)):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The sections the VPN recipes read, with their schema (recipes/_settings.py): the project
# validates them before anything is built.
SETTINGS = {
    "vpn": "_settings:Vpn",
    "network": "_settings:Network",
    "pki": "_settings:Pki",
    "secrets": "_settings:Secrets",
}


@dataclass(frozen=True)
class Vpn:
    role: str  # "server" (the road-warrior responder) or "client" (a test/lab client profile)
    server_name: str
    wan: ipaddress.IPv4Interface
    ppp: ipaddress.IPv4Interface
    pool: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
    dns: tuple[ipaddress.IPv4Address, ...]
    users: tuple[str, ...]
    mtu: int
    nat_traversal: bool
    ppp_debug: bool
    legacy_proposals: bool  # racoon also offers 3DES and MODP-1024 (Windows XP, old Android)
    server_address: ipaddress.IPv4Address  # where clients reach racoon
    client_user: str | None  # the user a client profile connects as

    @property
    def pool_text(self) -> str:
        return f"{self.pool[0]}-{self.pool[1]}"


def vpn_settings(pkg: Package) -> Vpn:
    """[vpn] and [network] as typed values. The project has validated them against
    ``_settings.Vpn``/``Network`` (types, the pool inside the PPP subnet, no overlap with the
    WAN, …) before any recipe runs, so this only converts; it needs no pydantic, which keeps the
    no-op build's start-up (it asks for the stamps' inputs) cheap."""
    data: Mapping[str, Any] = pkg.setting("vpn")
    wan = ipaddress.IPv4Interface(pkg.setting("network")["address"])
    ppp = ipaddress.IPv4Interface(data["ppp_address"])
    first, last = (ipaddress.IPv4Address(p.strip()) for p in data["client_pool"].split("-"))
    role = data.get("role", "server")
    client = role == "client"
    return Vpn(
        role=role,
        server_address=ipaddress.IPv4Address(data["server_address"]) if client else wan.ip,
        client_user=data["client_user"] if client else None,
        server_name=data["server_name"],
        wan=wan,
        ppp=ppp,
        pool=(first, last),
        dns=tuple(ipaddress.IPv4Address(a) for a in data.get("dns", [str(ppp.ip)])),
        users=tuple(data["users"]),
        mtu=data.get("mtu", 1280),
        nat_traversal=data.get("nat_traversal", False),
        ppp_debug=data.get("ppp_debug", False),
        legacy_proposals=data.get("legacy_proposals", True),
    )


# --- where secrets live: outside the repository and the build tree ---------------------------
def _user_path(pkg: Package, section: str, env: str, default: Path) -> Path:
    raw = os.environ.get(env) or pkg.setting(section).get("path")
    return Path(raw).expanduser().resolve() if raw else default


def _owner(pkg: Package, section: str) -> str:
    """Whose PKI/secrets: a client profile names its server board's (``name = "siso"``)."""
    return str(pkg.setting(section).get("name", pkg.board.name))


def secrets_path(pkg: Package) -> Path:
    home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    default = home / "fwbuild" / f"{_owner(pkg, 'secrets')}-secrets.toml"
    return _user_path(pkg, "secrets", "FWBUILD_SECRETS", default)


def pki_path(pkg: Package) -> Path:
    home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    default = home / "fwbuild" / "pki" / _owner(pkg, "pki")
    return _user_path(pkg, "pki", "FWBUILD_PKI_DIR", default)


def passwords_digest(pkg: Package, users: tuple[str, ...]) -> str:
    """What a stamp records of the users' passwords: HMAC-SHA256 of them, keyed with a random
    key kept beside the secrets file (``<file>.stamp-key``, mode 0600), never in the build tree.

    A password change must rebuild what holds or names it (chap-secrets, a .p12 bundle and the
    profiles that give its import password), so the stamps must cover the passwords; but stamps
    live in the build directory, and a plain digest of a password (or of a secrets file of a
    known layout) can be tested against a dictionary by whoever reads one. Without the key, a
    keyed digest gives nothing away; the key sits with the secrets it protects. Covering only
    these users' passwords, not the whole file, keeps an edit elsewhere in it from rebuilding."""
    path = secrets_path(pkg)
    if not path.exists():
        return "missing"  # the install step creates it; the stamp is keyed after it ran
    passwords = load_passwords(path, users, create=False)
    message = "\n".join(f"{u}\0{p}" for u, p in sorted(passwords.items())).encode()
    return hmac.new(_stamp_key(path), message, hashlib.sha256).hexdigest()


def _stamp_key(secrets: Path) -> bytes:
    key_file = secrets.with_name(secrets.name + ".stamp-key")
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        key = key_file.read_bytes()
        if len(key) >= 32:
            return key
        key_file.unlink()  # cut short (a crash between creating and writing it): a new one
        return _stamp_key(secrets)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {key_file}, the key that keeps the passwords of {secrets} out of the "
            f"build's stamps ({exc.strerror}); make {secrets.parent} writable, or point "
            "FWBUILD_SECRETS / [secrets] path at a file in a directory of your own"
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(random_secrets.token_bytes(32))
    return key_file.read_bytes()


def load_passwords(path: Path, users: tuple[str, ...], *, create: bool) -> dict[str, str]:
    """The users' passwords; a missing file is created with strong random ones (mode 0600)."""
    if not path.exists():
        if not create:
            return {}
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = ["# PPP passwords for the VPN users (pppd chap-secrets). Keep this file private.",
                 "[users]"]  # fmt: skip
        lines += [f'{u} = "{random_secrets.token_urlsafe(18)}"' for u in users]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print(f"generated random passwords for {', '.join(users)} in {path}", file=sys.stderr)
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"secrets file {path} is readable by others (mode {path.stat().st_mode & 0o777:o}); "
            f"run chmod 600 {path}"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"secrets file {path} is not valid TOML: {exc}") from None
    table = data.get("users", {})
    if not isinstance(table, dict):
        raise ConfigError(f'secrets file {path}: [users] must be a table of user = "password"')
    passwords: dict[str, str] = {}
    for user in users:
        value = table.get(user)
        if value is None or value == "":
            raise ConfigError(
                f"user {user!r} (in [vpn] users) has no password in {path}; add "
                f'{user} = "…" under [users]'
            )
        if not isinstance(value, str):
            raise ConfigError(
                f"the password of {user!r} in {path} must be a string: write it in quotes "
                f'({user} = "{value}"), TOML reads it as {type(value).__name__} otherwise'
            )
        if not value.isascii():
            # pppd's MS-CHAPv2 widens each byte of the secret to 16 bits; it does not decode
            # UTF-8, while Windows hashes the characters: a non-ASCII password never matches.
            raise ConfigError(
                f"the password of {user!r} in {path} has non-ASCII characters; Windows clients "
                "cannot log in with it (pppd's MS-CHAPv2 widens bytes, it does not convert "
                "UTF-8), so use ASCII letters, digits and punctuation only"
            )
        passwords[user] = value
    return passwords
