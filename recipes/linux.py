"""Linux 2.6.11 for the i586 board, with MPPE (and MPPC) for pppd, built with GCC for i386.

Variant ``mppc`` on: Jan Dubiec's MPPE/MPPC 1.3 kernel patch. The original for 2.6.11
(``linux-2.6.11-mppe-mppc-1.3.patch.gz``) has no public copy left and no published digest, so by
default the build uses his port of the same patch to 2.6.13, a single file of a public git
repository addressed by commit and pinned by its sha256: it applies to pristine 2.6.11 with
offsets only (no fuzz) and gives a kernel that boots and carries MPPE/MPPC sessions (the
real-source tests). Whoever has the original pins it (``doit pin:linux`` records its digest in
configs/pins.lock) or names it in an overrides file, and from then on the recipe prefers it
(fwbuild.alternatives). Off: the stock MPPE driver that ships in ppp-2.4.3's ``linux/mppe/``
(three small patches plus driver sources, what its mppeinstall.sh does).

kernel.org is alive, but the tarball also has a fallback: the pristine 2.6.11 tree of a public
git copy, exported reproducibly at a pinned commit (fwbuild.gitsource).

Our patches in patches/linux/2.6.11/ make the 2005 tree build and *run* with gcc 12, binutils 2.40
and make 4: segment-register moves, a Makefile typo, the bitops asm constraints that otherwise
build a kernel that panics at boot, make ≥ 3.82's ``$?`` (without the fix every ``make`` rebuilds
everything) and reproducible build stamps.

The configuration is ``make defconfig`` plus the board's fragments (``[kconfig] linux`` in the
board file), then the kernel's own ``oldconfig``; every requested value is read back (oldconfig
silently drops symbols whose dependencies are unmet; fwbuild.kinds.KconfigPackage). kbuild tracks
its own configuration, so a fragment change reconfigures and rebuilds incrementally in the same
tree; a patch change starts from a fresh tree. ``ARCH=``, the image (``bzImage`` for x86) and
where kbuild leaves it come from the board's target (fwbuild.arch).
"""

from __future__ import annotations

import dataclasses
import shutil
from typing import TYPE_CHECKING

from _ppp_source import PPP_SOURCE, PPP_TARBALL

from fwbuild.kinds import File, GitSource, KconfigPackage, Make, Patch, Source, Variant

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# gcc 12 against a 2005 kernel (2.6.11 has no KCFLAGS, so these ride on CC): Debian's gcc builds
# PIE by default ("impossible constraint in asm" in BUG()); old `extern inline` needs gnu89
# semantics; tentative definitions and no stack protector as gcc ≤ 9 did; no .eh_frame
# (2.6.11's linker script would keep 500 kB of it).
KERNEL_CFLAGS = (
    "-fno-pie -fgnu89-inline -fcommon -fno-stack-protector -fno-asynchronous-unwind-tables"
)


class Linux(KconfigPackage):
    name = "linux"
    version = "2.6.11"
    license = "GPL-2.0-only"
    license_files = {
        "COPYING": "sha256:0d7259feae5a7282c808e573622997e6abfb44f414457c0fba28841f702000c4",
        "CREDITS": "sha256:1292104cf6a0e20a12d36a09412c723d4a6ffa9922e369bfe1c85f64949d5afd",
    }
    homepage = "https://www.kernel.org/"
    cpe_products = ("o:linux:linux_kernel",)
    sources = (
        Source(
            "linux-2.6.11.tar.bz2",
            urls=(
                "https://cdn.kernel.org/pub/linux/kernel/v2.6/linux-2.6.11.tar.bz2",
                "https://www.kernel.org/pub/linux/kernel/v2.6/linux-2.6.11.tar.bz2",
                "https://mirrors.edge.kernel.org/pub/linux/kernel/v2.6/linux-2.6.11.tar.bz2",
            ),
            sha256="1fa39c202efe168bfeb0ddd74c8e4814f77da7dc78993e47826bad9173b95808",
            fallbacks=(
                # The pristine tree (17,091 files; not the corrupt copies from case-insensitive
                # file systems), as our reproducible tar: a different file, its own digest.
                GitSource(
                    "https://github.com/sndrzt/linux-2.6.11.git",
                    "ab87db4ec3bb3f2bfb485d062389c5588021efa9",
                    filename="linux-2.6.11-git-ab87db4e.tar",
                    sha256="8f07ecdfb0e3e18a7f8ea4abbd7df7bfa588c3f867e75c056971ac845ec41b64",
                ),
            ),
        ),
        # The stock MPPE driver of the ~mppc variant ships inside ppp's tarball.
        dataclasses.replace(PPP_SOURCE, when="~mppc"),
    )
    patches = (
        Patch(
            "linux-2.6.11-mppe-mppc-1.3.patch.gz",
            urls=(
                "http://mppe-mppc.alphacron.de/linux-2.6.11-mppe-mppc-1.3.patch.gz",
                "http://free.polbox.pl/h/hs001/linux-2.6.11-mppe-mppc-1.3.patch.gz",
                "https://web.archive.org/web/2006/http://mppe-mppc.alphacron.de/"
                "linux-2.6.11-mppe-mppc-1.3.patch.gz",
            ),
            when="+mppc",  # no published digest: used once pinned in configs/pins.lock
            fallbacks=(
                # The default: the 2.6.13 port, 50,746 bytes (see the module docstring).
                GitSource(
                    "https://github.com/nakedible/vpnease-l2tp.git",
                    "0fcda6a757f2bc5c37f4753b3cd8b1c6d282db5c",
                    path="kernel/linux-2.6.13-mppe-mppc-1.3.patch",
                    filename="linux-2.6.13-mppe-mppc-1.3-git-0fcda6a7.patch",
                    sha256="233ace93bec4634bca04ce172c1635a6ecfc2c2478af9228eced5888f05a6ba2",
                ),
            ),
        ),
    )
    variants = {"mppc": Variant("Jan Dubiec's MPPE/MPPC 1.3 patch instead of ppp's stock MPPE")}
    toolchain = "kernel"
    reconfigure_in_place = True
    kconfig_modules = False  # the board builds everything in
    kconfig_defconfig = "{arch.kernel_defconfig}"
    make_variables = {
        "ARCH": "{arch.linux_arch}",
        "CROSS_COMPILE": "{CROSS_COMPILE}",
        "CC": f"{{CROSS_COMPILE}}gcc {KERNEL_CFLAGS}",
        # Reproducible banners (our 0005 patch reads these).
        "KBUILD_BUILD_USER": "fwbuild",
        "KBUILD_BUILD_HOST": "fwbuild",
        "KBUILD_BUILD_VERSION": "1",
        "KBUILD_BUILD_TIMESTAMP": "@{SOURCE_DATE_EPOCH}",
    }
    build_steps = (Make(".", "{arch.kernel_target}"),)
    # Not part of the root file system: the image stage takes the kernel from staging.
    install_files = {
        "boot/{arch.kernel_image_name}": File("{arch.kernel_image}", 0o644, rootfs=False),
        "boot/config": File(".config", 0o644, rootfs=False),
        "boot/System.map": File("System.map", 0o644, rootfs=False),
    }
    image_files = {"{arch.kernel_image_name}": "boot/{arch.kernel_image_name}"}
    extra_tasks = {
        "menuconfig": ("menuconfig", "open the kernel's menuconfig on its configured tree"),
        "savedefconfig": (
            "savedefconfig",
            "write the configured tree's differences from defconfig to configs/linux/",
        ),
    }

    def post_patch(self, tree: Path, local_file: Callable[[str], Path]) -> None:
        if self.variant("mppc"):
            return
        # What ppp-2.4.3's linux/mppe/mppeinstall.sh does for 2.6, without its prompts.
        import tarfile

        # below the archive's one top directory (ppp-2.4.3/ upstream, another in the git export)
        mppe = "linux/mppe/"
        with tarfile.open(local_file(PPP_TARBALL)) as tar:
            inside = {m.name.partition("/")[2]: m for m in tar.getmembers() if m.isfile()}
            names = {n[len(mppe) :]: m for n, m in inside.items() if n.startswith(mppe)}
            patches = sorted(n for n in names if n.startswith("linux-2.6") and n.endswith(".patch"))
            staging = tree / ".mppe-patches"
            staging.mkdir()
            for n in patches:
                (staging / n).write_bytes(tar.extractfile(names[n]).read())
            from fwbuild.patching import PatchFile, apply_series  # (not on every start-up)

            apply_series(tree, [PatchFile(staging / n, 1) for n in patches], package=self.name)
            for n in ("sha1.c", "sha1.h", "arcfour.c", "arcfour.h", "ppp_mppe_compress.c"):
                (tree / "drivers" / "net" / n).write_bytes(tar.extractfile(names[n]).read())
            shutil.rmtree(staging)
