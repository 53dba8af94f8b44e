"""ppp 2.4.3: pppd (MS-CHAPv2, MPPE), chat, pppstats.

Variant ``mppc``: Jan Dubiec's MPPE/MPPC 1.1 patch replaces pppd's stock MPPE (the option names
change: ``mppe required,stateless`` instead of ``require-mppe-128``). Off: stock MPPE.

ppp's Makefiles probe the *build host* (``/usr/include/crypt.h``, ``/usr/lib/libcrypt.*``,
``pcap-bpf.h``) and add ``-lcrypt``, ``-DPPP_FILTER``, plugins. Passing CFLAGS, LIBS, FILTER and
PLUGIN on the make command line overrides every one of those, so nothing of the host can reach
the target: musl's libc.a has crypt/setkey/encrypt, which MS-CHAP's DES uses. A static pppd
cannot dlopen plugins, so none are built.
"""

from _ppp_source import PPP_SOURCE

from fwbuild.kinds import DeviceNeed, GitSource, Make, Package, Patch, Run, Variant

# What pppd/Makefile.linux's defaults (CHAPMS, MPPE, USE_CRYPT, HAS_SHADOW, multilink, TDB,
# MAXOCTETS) produce, written out; no IPX_CHANGE (zig's kernel headers have no linux/ipx.h).
PPPD_DEFINES = (
    "-DHAVE_PATHS_H -DHAVE_MMAP -DCHAPMS=1 -DMPPE=1 -DHAS_SHADOW -DHAVE_CRYPT_H=1 -DUSE_CRYPT=1 "
    "-DHAVE_MULTILINK -DUSE_TDB=1 -DMAXOCTETS"
)


class Ppp(Package):
    name = "ppp"
    version = "2.4.3"
    license = "BSD-4-Clause AND GPL-2.0-or-later AND LGPL-2.0-or-later AND Public-Domain"
    license_files = {
        "README": "sha256:cedd515fd1e8272414ee31cf5d16babd7fe19f0467aabb6293903d2e355722de",
        "pppd/tdb.c": "sha256:3990c65c506885f7bb75455d1d6188743a14ad46f5b62e136ef3739aed52c532",
        "pppd/plugins/rp-pppoe/pppoe.h":
            "sha256:ed9d060170af2234b3f51d769f75b0b551519bb00a26b81825a697f49c5ced1b",
    }  # fmt: skip
    homepage = "https://ppp.samba.org/"
    # NVD files pppd's CVEs under two names (CVE-2020-8597 under the second).
    cpe_products = ("samba:ppp", "point-to-point_protocol_project:point-to-point_protocol")
    cve_status = {
        "CVE-2015-3310": "not-affected: the overflow is in the RADIUS plugin (rc_mksid), which is "
        "not built (PLUGIN= is empty; a static pppd cannot load plugins)",
        "CVE-2006-2194": "not-affected: the winbind plugin is not built (no plugins, see above)",
        "CVE-2022-4603": "not-affected: the bug is in pppdump, which is neither built nor "
        "installed (only pppd, chat and pppstats are)",
        "CVE-2014-3158": "ignored: only an options file can carry the long word; in the image "
        "they are root-owned configuration, pppd is not setuid and there are no other users",
    }
    sources = (PPP_SOURCE,)  # with a git fallback: recipes/_ppp_source.py
    patches = (
        Patch(
            "ppp-2.4.3-mppe-mppc-1.1.patch.gz",
            urls=(
                "http://mppe-mppc.alphacron.de/ppp-2.4.3-mppe-mppc-1.1.patch.gz",
                "https://web.archive.org/web/2006/http://mppe-mppc.alphacron.de/"
                "ppp-2.4.3-mppe-mppc-1.1.patch.gz",
            ),
            md5="8453a29338cb96dd0c0dda35d3e872a4",  # Gentoo's digest; no sha256 was published
            when="+mppc",
            fallbacks=(
                # alphacron.de and polbox are gone: PLD's copy, uncompressed, at the commit
                # before they rediffed it in place for newer ppp releases.
                GitSource(
                    "https://github.com/pld-linux/ppp.git",
                    "1b28c30e5b09e0ff494af7e14b5ee57c65ad8822",
                    path="ppp-2.4.3-mppe-mppc-1.1.patch",
                    filename="ppp-2.4.3-mppe-mppc-1.1-git-1b28c30e.patch",
                    sha256="ccd12b811db28f73ce67e649fd519995dd8bce233ffc9fa7d6fe5a14c921f059",
                ),
            ),
        ),
    )
    variants = {"mppc": Variant("Jan Dubiec's MPPE/MPPC 1.1 patch instead of the stock MPPE")}
    needs_devices = (DeviceNeed("/dev/ppp", "c", 108, 0, why="pppd's generic PPP channel"),)

    # ppp's own configure only picks the linux Makefiles (from uname); it probes nothing.
    configure_steps = (Run("./configure", "--prefix=/usr"),)
    # Not the top-level make: it would also build plugins (shared objects) and pppdump.
    build_steps = (
        Make("pppd", CC="{CC}", CFLAGS=f"{{CFLAGS}} -std=gnu89 -I../include {PPPD_DEFINES}",
             LDFLAGS="", LIBS="", FILTER="", PLUGIN=""),
        # chat links with `$(CC) -o chat chat.o`: flags must ride on CC to reach the link.
        Make("chat", CC="{CC} {CFLAGS}", COPTS="-std=gnu89"),
        Make("pppstats", CC="{CC}", COPTS="{CFLAGS} -std=gnu89"),
    )  # fmt: skip
    # Upstream's `make install` strips with the host strip, chgrps, and rebuilds a missing
    # binary with the host cc: the three programs are copied instead.
    install_files = {
        "usr/sbin/pppd": ("pppd/pppd", 0o755),
        "usr/sbin/chat": ("chat/chat", 0o755),
        "usr/sbin/pppstats": ("pppstats/pppstats", 0o755),
    }
