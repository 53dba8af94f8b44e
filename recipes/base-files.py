"""The board's own small files: hostname, network and system settings for the boot script.

The static part of the base system (inittab, /etc/init.d/rcS, passwd, group, the /etc/ppp link)
is the board's rootfs overlay (configs/rootfs/); this renders what comes from the board file.
"""

import ipaddress

from fwbuild.errors import ConfigError
from fwbuild.recipe import Package
from fwbuild.templates import render

TEMPLATES = "configs/templates/base"
SYSLOG = {"buffer": "-C64", "console": "-O /dev/console"}


class BaseFiles(Package):
    name = "base-files"
    version = "1"
    license = "MIT"
    toolchain = "none"
    board_sections = ("network", "system", "vpn")
    board_files = (f"{TEMPLATES}/network.in", f"{TEMPLATES}/system.in")
    target_files = {
        "etc/hostname": 0o644,
        "etc/sysconfig/network": 0o644,
        "etc/sysconfig/system": 0o644,
    }

    def settings(self):
        net = self.board.data.get("network", {})
        where = f"{self.board.file}: [network]"
        hostname = net.get("hostname")
        if not isinstance(hostname, str) or not hostname.replace("-", "").isalnum():
            raise ConfigError(f"{where} hostname must be letters, digits and '-'")
        try:
            address = ipaddress.IPv4Interface(net.get("address", ""))
            gateway = ipaddress.IPv4Address(net["gateway"]) if net.get("gateway") else None
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if gateway is not None and gateway not in address.network:
            raise ConfigError(f"{where} gateway {gateway} is not in {address.network}")
        interface = net.get("interface", "eth0")
        syslog = self.board.data.get("system", {}).get("syslog", "buffer")
        if syslog not in SYSLOG:
            raise ConfigError(f"{self.board.file}: [system] syslog must be one of {sorted(SYSLOG)}")
        return {
            "hostname": hostname,
            "interface": interface,
            "address": address.with_prefixlen,
            "gateway": gateway or "",
            "role": self.board.data.get("vpn", {}).get("role", "server"),
            "syslogd_args": SYSLOG[syslog],
        }

    def validate(self):
        self.settings()

    def install(self, ctx):
        values = self.settings()
        project = self.board.paths.project
        (ctx.staging / "etc" / "sysconfig").mkdir(parents=True)
        (ctx.staging / "etc" / "hostname").write_text(values["hostname"] + "\n")
        for name in ("network", "system"):
            text = render(project / TEMPLATES / f"{name}.in", values)
            (ctx.staging / "etc" / "sysconfig" / name).write_text(text)
