"""BusyBox 1.35.0: init, the shell and the small tools of the rootfs, as one static binary.

Configuration is ``make allnoconfig`` plus ``configs/busybox.fragment``: only what the fragment
asks for is built. allnoconfig writes every int/string symbol too, as ``0``/``""`` (so enabling
line editing would leave ``FEATURE_EDITING_MAX_LEN=0``); those values are dropped before the
fragment is merged, so ``make oldconfig`` gives them their Kconfig defaults. Kconfig silently
drops a symbol whose dependencies are unmet, so the final ``.config`` is read back and every
line of the fragment must be there, or the build stops naming the symbol.

Install: ``/bin/busybox`` and one symbolic link per applet (``/bin/sh -> busybox``, from the
build's ``busybox.links``), relative so they work inside the image and in ``$ROOTFS_DIR``.

BusyBox's own Makefile links through ``$(CC) -nostdlib`` (no separate ld) and strips with
``$(STRIP)``; host programs (kconfig, the applet table generators) use the host gcc.
"""

import os

from fwbuild.kconfig import merge, parse_fragment, verify
from fwbuild.recipe import Package, Source

FRAGMENT = "configs/busybox.fragment"


class Busybox(Package):
    name = "busybox"
    version = "1.35.0"
    license = "GPL-2.0-only"
    license_files = ("LICENSE",)
    homepage = "https://busybox.net/"
    cpe_products = ("busybox:busybox",)
    # Applets configs/busybox.fragment does not enable are not in the binary.
    cve_status = {
        "CVE-2022-30065": "not-affected: the awk applet is not built",
        "CVE-2023-39810": "not-affected: the cpio applet is not built",
        "CVE-2025-46394": "not-affected: the tar applet is not built",
    }
    sources = (
        Source(
            "busybox-1.35.0.tar.bz2",
            urls=(
                "https://busybox.net/downloads/busybox-1.35.0.tar.bz2",
                "https://www.busybox.net/downloads/busybox-1.35.0.tar.bz2",
            ),
            sha256="faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694",
        ),
    )
    board_files = (FRAGMENT,)
    # The binary and its applet links (patterns: the links are whatever the build made).
    target_files = {"bin/busybox": 0o755, "bin/*": 0o777, "sbin/*": 0o777, "usr/bin/*": 0o777,
                    "usr/sbin/*": 0o777}  # fmt: skip

    def _make_vars(self, ctx) -> list[str]:
        env = ctx.env
        return [
            f"CC={env['CC']}",
            f"AR={env['AR']}",
            f"STRIP={env['STRIP']}",
            # Show full commands in the log.
            "V=1",
        ]

    def configure(self, ctx):
        fragment = self.board.paths.project / FRAGMENT
        wanted = parse_fragment(fragment)
        ctx.make("allnoconfig", jobs=1)
        config = ctx.srcdir / ".config"
        # allnoconfig writes int/string symbols as 0/"": drop them so oldconfig gives them their
        # Kconfig defaults (enabling line editing would otherwise keep FEATURE_EDITING_MAX_LEN=0).
        defaults_dropped = [
            line
            for line in config.read_text().splitlines()
            if not (line.startswith("CONFIG_") and line.split("=", 1)[1] not in ("y", "m"))
        ]
        config.write_text("\n".join(defaults_dropped) + "\n")
        merge(config, wanted)
        # oldconfig asks about every symbol without a value; an empty answer takes the default.
        ctx.run("make", "oldconfig", input=b"\n" * 5000)
        verify(config, wanted, ctx.srcdir, package=self.name, source=fragment)

    def build(self, ctx):
        # busybox.links (the applet list with install paths) is its own target.
        ctx.make(*self._make_vars(ctx), "busybox", "busybox.links")

    def install(self, ctx):
        ctx.install_file("busybox", "bin/busybox", 0o755)
        for line in (ctx.srcdir / "busybox.links").read_text().split():
            path = "/" + line.lstrip("/")
            if path == "/bin/busybox":
                continue
            link = ctx.staging / path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath("/bin/busybox", os.path.dirname(path)))
