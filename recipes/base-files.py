"""The board's own small files: hostname, network and system settings for the boot script.

The static part of the base system (inittab, /etc/init.d/rcS, passwd, group, the /etc/ppp link)
is the board's rootfs overlay (configs/rootfs/); this renders what comes from the board file.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from fwbuild.errors import ConfigError
from fwbuild.recipe import Package
from fwbuild.templates import render

if TYPE_CHECKING:
    from fwbuild.steps import Context

TEMPLATES = "configs/templates/base"
SYSLOG = {"buffer": "-C64", "console": "-O /dev/console"}


class BaseFiles(Package):
    name = "base-files"
    version = "1"
    license = "MIT"
    toolchain = "none"
    board_sections = ("network", "system", "vpn")
    # [vpn] role is read too, but [vpn] belongs to the VPN recipes (a board without them has none)
    settings = {"network": "_settings:Network", "system": "_settings:System"}
    board_files = (f"{TEMPLATES}/network.in", f"{TEMPLATES}/system.in")
    target_files = {
        "etc/hostname": 0o644,
        "etc/sysconfig/network": 0o644,
        "etc/sysconfig/system": 0o644,
    }

    def values(self):
        # [network] and [system] have been validated against _settings.Network/System
        net = self.setting("network")
        address = ipaddress.IPv4Interface(net["address"])
        syslog = self.setting("system").get("syslog", "buffer")
        return {
            "hostname": net.get("hostname"),
            "interface": net.get("interface", "eth0"),
            "address": address.with_prefixlen,
            "gateway": ipaddress.IPv4Address(net["gateway"]) if net.get("gateway") else "",
            "role": self.setting("vpn").get("role", "server"),
            "syslogd_args": SYSLOG[syslog],
        }

    def validate(self) -> None:
        if not self.setting("network").get("hostname"):
            raise ConfigError(
                f"{self.board.file}: [network] hostname is missing; base-files writes it to "
                "/etc/hostname (letters, digits and '-')"
            )

    def install(self, ctx: Context) -> None:
        values = self.values()
        (ctx.staging / "etc" / "sysconfig").mkdir(parents=True)
        (ctx.staging / "etc" / "hostname").write_text(values["hostname"] + "\n")
        for name in ("network", "system"):
            text = render(self.board_file(f"{TEMPLATES}/{name}.in"), values)
            (ctx.staging / "etc" / "sysconfig" / name).write_text(text)
