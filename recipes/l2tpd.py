"""l2tpd 0.69: the L2TP daemon Windows XP's L2TP/IPsec client talks to (LNS; also a LAC).

Our patches make it build with clang/musl, fix the pty echo bug ("Serial line is looped back":
ICANON|ECHO were cleared in c_cflag) and bound the known buffer overflows (CVE-2004-0649 in
write_packet, and three more found in review). At run time it allocates BSD ptys and reads
/dev/urandom for tunnel and call IDs (without it both ends pick the same ones): the image must
provide those nodes.
"""

from fwbuild.kinds import DeviceNeed, GitSource, Make, Package, Source

# -std=gnu89: old `inline` semantics; -fcommon: tentative definitions shared between objects;
# -fno-builtin-log: l2tpd has its own variadic log(), not libm's. The DEBUG_ defines are
# upstream's defaults and only control logging.
L2TPD_FLAGS = "-std=gnu89 -fcommon -fno-builtin-log -DDEBUG_PPPD -DDEBUG_CONTROL -DDEBUG_ENTROPY"


def _bsd_ptys() -> tuple[DeviceNeed, ...]:
    needs = []
    for n in range(16):
        letter = "0123456789abcdef"[n]
        needs.append(DeviceNeed(f"/dev/ptyp{letter}", "c", 2, n, 0o666, "BSD pty master"))
        needs.append(DeviceNeed(f"/dev/ttyp{letter}", "c", 3, n, 0o666, "BSD pty slave"))
    return tuple(needs)


class L2tpd(Package):
    name = "l2tpd"
    version = "0.69"
    license = "GPL-2.0-or-later"
    license_files = {
        "LICENSE": "sha256:dcc100d4161cc0b7177545ab6e47216f84857cda3843847c792a25289852dcaa"
    }
    homepage = "http://www.l2tpd.org/"
    cpe_products = ("l2tpd:l2tpd",)
    sources = (
        Source(
            "l2tpd-0.69.tar.gz",
            urls=(
                "http://www.l2tpd.org/downloads/l2tpd-0.69.tar.gz",
                "https://downloads.sourceforge.net/l2tpd/l2tpd-0.69.tar.gz",
            ),
            md5="c5dba6b80f583070fe9e6ed6e0c2162e",  # Gentoo, FreeBSD and PLD agree
            fallbacks=(
                # l2tpd.org is dead: the 0.69 import of a public git copy (the same tree as
                # ng-alt/l2tpd and xelerance/xl2tpd's first commit), as our reproducible tar.
                GitSource(
                    "https://github.com/sina-ht/l2tpd.git",
                    "c729b8c8b5166d1141dc07eb7cc1c6720c59e8ad",
                    filename="l2tpd-0.69-git-c729b8c8.tar",
                    sha256="345bd1be228e448caf95dcd71560d1a0d1b4ee56f69e6bd7dcc1190a87561ce4",
                ),
            ),
        ),
    )
    # DFLAGS also reaches the link line, which gives zig an optimised (stripped) link.
    build_steps = (Make(CC="{CC}", OSFLAGS="-DLINUX", DFLAGS=f"{{CFLAGS}} {L2TPD_FLAGS}"),)
    install_files = {"usr/sbin/l2tpd": ("l2tpd", 0o755)}
    needs_devices = (
        *_bsd_ptys(),
        DeviceNeed("/dev/urandom", "c", 1, 9, 0o644, "tunnel and call IDs"),
    )
