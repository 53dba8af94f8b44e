"""What the VPN recipes share: the board's [vpn]/[network]/[pki]/[secrets] settings (their
schema is recipes/_settings.py), the passwords file, and the file formats' quoting rules. Not a
recipe itself (the leading underscore keeps it off the board).
"""

from __future__ import annotations

import ipaddress
import os
import secrets as random_secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwbuild.config import Board
from fwbuild.errors import ConfigError

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


def vpn_settings(board: Board) -> Vpn:
    """[vpn] and [network] as typed values. The project has validated them against
    ``_settings.Vpn``/``Network`` (types, the pool inside the PPP subnet, no overlap with the
    WAN, …) before any recipe runs, so this only converts; it needs no pydantic, which keeps the
    no-op build's start-up (it asks for the stamps' inputs) cheap."""
    data: dict[str, Any] = board.data["vpn"]
    wan = ipaddress.IPv4Interface(board.data["network"]["address"])
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
def _user_path(board: Board, section: str, env: str, default: Path) -> Path:
    raw = os.environ.get(env) or board.data.get(section, {}).get("path")
    return Path(raw).expanduser().resolve() if raw else default


def _owner(board: Board, section: str) -> str:
    """Whose PKI/secrets: a client profile names its server board's (``name = "siso"``)."""
    return str(board.data.get(section, {}).get("name", board.name))


def secrets_path(board: Board) -> Path:
    home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    default = home / "fwbuild" / f"{_owner(board, 'secrets')}-secrets.toml"
    return _user_path(board, "secrets", "FWBUILD_SECRETS", default)


def pki_path(board: Board) -> Path:
    home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    default = home / "fwbuild" / "pki" / _owner(board, "pki")
    return _user_path(board, "pki", "FWBUILD_PKI_DIR", default)


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
