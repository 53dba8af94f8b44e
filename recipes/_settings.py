"""The schema of the board sections the SISO recipes read: [network], [system], [vpn], [pki],
[secrets] (pydantic models; the engine's own sections are in fwbuild.schema).

The recipes name these models as strings (``settings = {"vpn": "_settings:Vpn"}``), so this
module, and pydantic, are imported only when the board or its schema changed. Types are strict
(``nat_traversal = "no"`` is an error, not NAT-T switched on); the checks that span keys or
sections (the pool inside the PPP subnet, the PPP subnet apart from the WAN) are validators with
the messages the recipes have always given.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from _vpn import pppd_word
from pydantic import Field, ValidationInfo, field_validator, model_validator

from fwbuild.errors import ConfigError
from fwbuild.schema import Section, key_error


def _interface(value: str, *, need_prefix: bool) -> ipaddress.IPv4Interface:
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (write ADDRESS/PREFIX)") from None
    if need_prefix and iface.network.prefixlen == 32:
        raise ValueError("needs a prefix length, e.g. 192.168.50.1/24")
    return iface


def _pool(value: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    try:
        first, last = (ipaddress.IPv4Address(p.strip()) for p in value.split("-"))
    except ValueError:
        raise ValueError("must be FIRST-LAST addresses") from None
    return first, last


def _word(word: str, what: str) -> None:
    try:
        pppd_word(word, what=what)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _board(info: ValidationInfo) -> dict[str, Any]:
    context = info.context or {}
    board = context.get("board")
    return board if isinstance(board, dict) else {}


class Network(Section):
    """The side road warriors reach (eth0): racoon listens on its address."""

    hostname: str | None = Field(default=None, description="letters, digits and '-'")
    interface: str = "eth0"
    address: str = Field(description="ADDRESS/PREFIX, e.g. 192.168.1.1/24")
    gateway: str = Field(default="", description="an address in the subnet, or empty")

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.replace("-", "").isalnum()):
            raise ValueError("must be letters, digits and '-'")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        _interface(value, need_prefix=False)
        return value

    @model_validator(mode="after")
    def _gateway(self) -> Network:
        if self.gateway:
            try:
                gateway = ipaddress.IPv4Address(self.gateway)
            except ValueError as exc:
                raise key_error("gateway", str(exc)) from None
            network = ipaddress.IPv4Interface(self.address).network
            if gateway not in network:
                raise key_error("gateway", f"{gateway} is not in {network}")
        return self


class System(Section):
    syslog: Literal["buffer", "console"] = Field(
        default="buffer", description="buffer: BusyBox's ring buffer (logread); console: serial"
    )


class Vpn(Section):
    """The road-warrior L2TP/IPsec server, or (role = "client") a lab client profile."""

    role: Literal["server", "client"] = "server"
    server_name: str = Field(description="certificate CN, l2tpd/pppd name; a plain host name")
    ppp_address: str = Field(description="the server's end of every PPP link, ADDRESS/PREFIX")
    client_pool: str = Field(description="FIRST-LAST, inside the PPP subnet")
    dns: list[str] | None = Field(default=None, description="default: the server's PPP address")
    users: list[str] = Field(description="the VPN users; passwords are in the secrets file")
    mtu: int = 1280
    nat_traversal: bool = False
    ppp_debug: bool = Field(default=False, description="pppd logs every LCP/CHAP/CCP packet")
    legacy_proposals: bool = Field(
        default=True,
        description="racoon also accepts 3DES and MODP-1024 (Windows XP, Android's legacy "
        "L2TP client); false: AES with SHA-1/SHA-256 and MODP-2048 only",
    )
    server_address: str | None = Field(default=None, description="role = client: the server")
    client_user: str | None = Field(default=None, description="role = client: who connects")

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str) -> str:
        _word(value, "the server name")
        if any(c in value for c in " \"'#\\"):
            raise ValueError("must be a plain host name")
        return value

    @field_validator("ppp_address")
    @classmethod
    def _ppp_address(cls, value: str) -> str:
        _interface(value, need_prefix=True)
        return value

    @field_validator("client_pool")
    @classmethod
    def _client_pool(cls, value: str) -> str:
        first, last = _pool(value)
        if first > last:
            raise ValueError(f"{first} comes after {last}")
        return value

    @field_validator("dns")
    @classmethod
    def _dns(cls, value: list[str] | None) -> list[str] | None:
        for address in value or []:
            ipaddress.IPv4Address(address)
        return value

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        if not value or not all(value):
            raise ValueError("must be a non-empty list of user names")
        if len(set(value)) != len(value):
            raise ValueError("names a user twice")
        for user in value:
            _word(user, f"user name {user!r}")
        return value

    @field_validator("mtu")
    @classmethod
    def _mtu(cls, value: int) -> int:
        if not 576 <= value <= 1500:
            raise ValueError("must be a number from 576 to 1500")
        return value

    @field_validator("server_address")
    @classmethod
    def _server_address(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.IPv4Address(value)
        return value

    @model_validator(mode="after")
    def _subnets(self, info: ValidationInfo) -> Vpn:
        ppp = ipaddress.IPv4Interface(self.ppp_address)
        first, last = _pool(self.client_pool)
        for end in (first, last):
            if end not in ppp.network or end in (
                ppp.network.network_address,
                ppp.network.broadcast_address,
            ):
                raise key_error(
                    "client_pool",
                    f"{end} is outside the server's PPP subnet {ppp.network} (ppp_address); "
                    "clients must get addresses in it",
                )
        if first <= ppp.ip <= last:
            raise key_error(
                "client_pool",
                f"{first}-{last} contains the server's own PPP address {ppp.ip} (ppp_address); "
                "start the pool after it",
            )
        network = _board(info).get("network")
        try:
            wan = ipaddress.IPv4Interface(network["address"]) if network else None
        except (ValueError, TypeError, KeyError):
            wan = None  # [network]'s own model says what is wrong with it
        if wan is not None and wan.network.overlaps(ppp.network):
            raise key_error(
                "ppp_address",
                f"the PPP subnet {ppp.network} overlaps the WAN subnet {wan.network} ([network] "
                "address); use a separate subnet for VPN clients",
            )
        if self.role == "client":
            if self.server_address is None:
                raise key_error("server_address", "is missing; a client profile needs it")
            if self.client_user is None:
                raise key_error("client_user", "is missing; a client profile needs it")
            if self.client_user not in self.users:
                raise key_error("client_user", f"{self.client_user!r} is not in users")
        return self


class Pki(Section):
    """The certificates (outside the repository: FWBUILD_PKI_DIR or path)."""

    path: str | None = Field(default=None, description="the PKI directory")
    name: str | None = Field(default=None, description="whose PKI: a client profile's server")
    ca_subject: dict[str, str] | None = Field(default=None, description='{ CN = "…", O = "…" }')
    signature: Literal["sha256", "sha1"] = Field(
        default="sha256", description="sha1 only for Windows XP before SP3"
    )
    revoked: list[str] = Field(default=[], description="users whose certificates are revoked")

    @model_validator(mode="after")
    def _revoked_are_users(self, info: ValidationInfo) -> Pki:
        vpn = _board(info).get("vpn")
        users = vpn.get("users") if isinstance(vpn, dict) else None
        if isinstance(users, list):
            for user in self.revoked:
                if user not in users:
                    raise key_error("revoked", f"names {user!r}, not one of [vpn] users")
        return self


class Secrets(Section):
    """The users' passwords (outside the repository: FWBUILD_SECRETS or path)."""

    path: str | None = Field(default=None, description="the secrets file (TOML, mode 0600)")
    name: str | None = Field(default=None, description="whose secrets: a client profile's server")
