"""BusyBox 1.35.0: init, the shell and the small tools of the rootfs, as one static binary.

Configuration is ``make allnoconfig`` plus the board's fragments (``[kconfig] busybox`` in the
board file: ``configs/busybox.fragment``): only what they ask for is built. allnoconfig writes
every int/string symbol too, as ``0``/``""`` (so enabling line editing would leave
``FEATURE_EDITING_MAX_LEN=0``); those values are dropped before the fragments are merged, so
``make oldconfig`` gives them their Kconfig defaults. Kconfig silently drops a symbol whose
dependencies are unmet, so the final ``.config`` is read back and every line of the fragments
must be there, or the build stops naming the symbol (fwbuild.kinds.KconfigPackage).

Install: ``/bin/busybox`` and one symbolic link per applet (``/bin/sh -> busybox``, from the
build's ``busybox.links``), relative so they work inside the image and in ``$ROOTFS_DIR``.

BusyBox's own Makefile links through ``$(CC) -nostdlib`` (no separate ld) and strips with
``$(STRIP)``; host programs (kconfig, the applet table generators) use the host gcc.
"""

from fwbuild.kinds import KconfigPackage, Make, Source


class Busybox(KconfigPackage):
    name = "busybox"
    version = "1.35.0"
    license = "GPL-2.0-only"
    license_files = {
        "LICENSE": "sha256:bbfc9843646d483c334664f651c208b9839626891d8f17604db2146962f43548"
    }
    homepage = "https://busybox.net/"
    cpe_products = ("busybox:busybox",)
    # Applets the board's fragment does not enable are not in the binary.
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
    kconfig_base = "allnoconfig"
    kconfig_drop_base_values = True
    # V=1: full commands in the log.
    make_variables = {"CC": "{CC}", "AR": "{AR}", "STRIP": "{STRIP}", "V": "1"}
    # busybox.links (the applet list with install paths) is its own target.
    build_steps = (Make(".", "busybox", "busybox.links"),)
    install_files = {"bin/busybox": ("busybox", 0o755)}
    install_links = {"busybox.links": "bin/busybox"}
