"""What the VPN recipes share: the board's [vpn]/[pki]/[secrets] settings, validated, and the
file formats' quoting rules. Not a recipe itself (the leading underscore keeps it off the board).
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
    server_address: ipaddress.IPv4Address  # where clients reach racoon
    client_user: str | None  # the user a client profile connects as

    @property
    def pool_text(self) -> str:
        return f"{self.pool[0]}-{self.pool[1]}"


def _key(board: Board, key: str) -> str:
    return f"{board.file}: [vpn] {key}"


def vpn_settings(board: Board) -> Vpn:
    data: dict[str, Any] = board.data.get("vpn", {})

    def need(key: str, kind: type) -> Any:
        if not isinstance(data.get(key), kind):
            raise ConfigError(f"{_key(board, key)} is missing or not a {kind.__name__}")
        return data[key]

    def interface(key: str) -> ipaddress.IPv4Interface:
        try:
            iface = ipaddress.IPv4Interface(need(key, str))
        except ValueError as exc:
            raise ConfigError(f"{_key(board, key)}: {exc} (write ADDRESS/PREFIX)") from None
        if iface.network.prefixlen == 32:
            raise ConfigError(f"{_key(board, key)} needs a prefix length, e.g. 192.168.50.1/24")
        return iface

    server_name = need("server_name", str)
    network = board.data.get("network", {})
    try:
        wan = ipaddress.IPv4Interface(network.get("address", ""))
    except ValueError as exc:
        raise ConfigError(f"{board.file}: [network] address: {exc} (ADDRESS/PREFIX)") from None
    ppp = interface("ppp_address")
    role = data.get("role", "server")
    if role not in ("server", "client"):
        raise ConfigError(f'{_key(board, "role")} must be "server" or "client", not {role!r}')
    try:
        first, last = (
            ipaddress.IPv4Address(p.strip()) for p in need("client_pool", str).split("-")
        )
    except ValueError:
        raise ConfigError(f"{_key(board, 'client_pool')} must be FIRST-LAST addresses") from None
    if first > last:
        raise ConfigError(f"{_key(board, 'client_pool')}: {first} comes after {last}")
    for end in (first, last):
        if end not in ppp.network or end in (
            ppp.network.network_address,
            ppp.network.broadcast_address,
        ):
            raise ConfigError(
                f"{_key(board, 'client_pool')}: {end} is outside the server's PPP subnet "
                f"{ppp.network} (ppp_address); clients must get addresses in it"
            )
    if first <= ppp.ip <= last:
        raise ConfigError(
            f"{_key(board, 'client_pool')} {first}-{last} contains the server's own PPP address "
            f"{ppp.ip} (ppp_address); start the pool after it"
        )
    if wan.network.overlaps(ppp.network):
        raise ConfigError(
            f"{_key(board, 'ppp_address')}: the PPP subnet {ppp.network} overlaps the WAN subnet "
            f"{wan.network} ([network] address); use a separate subnet for VPN clients"
        )
    users = need("users", list)
    if not users or not all(isinstance(u, str) and u for u in users):
        raise ConfigError(f"{_key(board, 'users')} must be a non-empty list of user names")
    if len(set(users)) != len(users):
        raise ConfigError(f"{_key(board, 'users')} names a user twice")
    for user in users:
        pppd_word(user, what=f"{_key(board, 'users')}: user name {user!r}")
    pppd_word(server_name, what=_key(board, "server_name"))
    if any(c in server_name for c in " \"'#\\"):
        raise ConfigError(f"{_key(board, 'server_name')} must be a plain host name")
    try:
        dns = tuple(ipaddress.IPv4Address(a) for a in data.get("dns", [str(ppp.ip)]))
    except ValueError as exc:
        raise ConfigError(f"{_key(board, 'dns')}: {exc}") from None
    mtu = data.get("mtu", 1280)
    if not isinstance(mtu, int) or not 576 <= mtu <= 1500:
        raise ConfigError(f"{_key(board, 'mtu')} must be a number from 576 to 1500")
    server_address = wan.ip
    client_user = None
    if role == "client":
        try:
            server_address = ipaddress.IPv4Address(need("server_address", str))
        except ValueError as exc:
            raise ConfigError(f"{_key(board, 'server_address')}: {exc}") from None
        client_user = need("client_user", str)
        if client_user not in users:
            raise ConfigError(f"{_key(board, 'client_user')} {client_user!r} is not in users")
    return Vpn(
        role=role,
        server_address=server_address,
        client_user=client_user,
        server_name=server_name,
        wan=wan,
        ppp=ppp,
        pool=(first, last),
        dns=dns,
        users=tuple(users),
        mtu=mtu,
        nat_traversal=bool(data.get("nat_traversal", False)),
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
    passwords: dict[str, str] = {}
    for user in users:
        value = table.get(user)
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"user {user!r} (in [vpn] users) has no password in {path}; add "
                f'{user} = "…" under [users]'
            )
        passwords[user] = value
    return passwords
