"""The names other build systems give the board's target architecture.

A board says ``[target] arch`` in zig's words (``x86``, ``mipsel``, ``arm`` …) and ``cpu``
(``i586`` …). Each build system spells the same machine its own way: a GNU ``--host`` triplet
that a 2005 ``config.sub`` still accepts, the kernel's ``ARCH=`` and the path of its boot image,
OpenSSL's ``Configure`` target, the qemu-user program that runs its binaries, the ELF machine a
binary must carry. Recipes take them from here (``self.arch`` / ``ctx.arch``) instead of writing
one board's answer into the recipe, so a second board needs no recipe edit.

This module is only a table: adding an architecture is adding a row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache

from fwbuild.errors import ConfigError


@dataclass(frozen=True)
class Arch:
    """One architecture under the names build systems use for it."""

    name: str  # zig's, as the board writes it
    gnu_cpu: str  # config.sub's cpu field (x86: refined by the board's cpu, see gnu_host_cpu)
    gnu_vendor: str  # config.sub's vendor field; "pc" for x86 as autoconf writes it
    linux_arch: str  # the kernel's ARCH= (2.6-era names: i386, not x86)
    kernel_image: str  # the boot image's path in the kernel tree after ``make <kernel_target>``
    kernel_target: str  # the make goal that builds it
    bits: int
    endian: str  # "little" or "big"
    qemu_user: str  # the qemu-user program that runs the target's Linux binaries
    elf_machine: str  # e_machine as pyelftools names it
    openssl_asm_target: str = ""  # OpenSSL's Configure target with assembler, where one exists
    cpu: str | None = None  # the board's [target] cpu, once bound to a board (target_arch)

    @property
    def kernel_image_name(self) -> str:
        """The boot image's file name (``bzImage``, ``zImage``, ``vmlinux``)."""
        return self.kernel_image.rsplit("/", 1)[-1]

    @property
    def kernel_defconfig(self) -> str:
        """Where the kernel tree keeps this architecture's default configuration."""
        return f"arch/{self.linux_arch}/defconfig"

    @property
    def openssl_target(self) -> str:
        """OpenSSL's generic ``Configure`` target (no assembler) for this word size."""
        return f"linux-generic{self.bits}"

    @property
    def gnu_host_cpu(self) -> str:
        """config.sub's cpu for the board's ``[target] cpu``: for x86 the i[3-6]86 that says
        which instructions configure scripts may assume; the table's cpu elsewhere."""
        cpu = (self.cpu or "").lower()
        if self.name == "x86" and cpu:
            return _X86_GNU_CPU.get(cpu, "i386" if cpu in _X86_386 else "i686")
        return self.gnu_cpu

    @property
    def gnu_host(self) -> str:
        """The GNU host triplet (``i586-pc-linux-gnu``) for ``--host=``.

        Always ``linux-gnu``: a 2005 ``config.sub`` rejects ``-musl`` (and so do the 2014 ones
        shipped in many tarballs), and configure scripts only use the host to pick their Linux
        code paths; the compiler is ``$CC`` whatever the libc."""
        return f"{self.gnu_host_cpu}-{self.gnu_vendor}-linux-gnu"

    @property
    def qemu_cpu(self) -> str | None:
        """qemu-user's ``-cpu`` model for the board's cpu where it matters (x86: a Pentium has
        no CMOV, and qemu's default cpu would hide code that uses it); None: qemu's default."""
        if self.name == "x86" and self.cpu:
            return _X86_QEMU_CPU.get(self.cpu.lower())
        return None

    @property
    def qemu_command(self) -> list[str]:
        """The qemu-user command line prefix that runs a target binary (``qemu-i386 -cpu
        pentium``)."""
        cpu = self.qemu_cpu
        return [self.qemu_user, *(["-cpu", cpu] if cpu else [])]


# zig/LLVM x86 cpu names -> config.sub cpu. Anything newer than a Pentium Pro is i686 for
# configure's purposes; i386/i486 are their own.
_X86_386 = {"i386", "generic"}
_X86_GNU_CPU = {
    "i386": "i386",
    "i486": "i486",
    "i586": "i586",
    "pentium": "i586",
    "pentium_mmx": "i586",
    "lakemont": "i586",
    "k6": "i586",
    "k6_2": "i586",
    "k6_3": "i586",
    "winchip_c6": "i586",
    "winchip2": "i586",
    "c3": "i586",
    "geode": "i586",
}
_X86_QEMU_CPU = {"i486": "486", "i586": "pentium", "pentium": "pentium", "pentium_mmx": "pentium"}

_TABLE = (
    Arch("x86", "i386", "pc", "i386", "arch/i386/boot/bzImage", "bzImage", 32, "little",
         "qemu-i386", "EM_386", "linux-elf"),
    Arch("x86_64", "x86_64", "pc", "x86_64", "arch/x86_64/boot/bzImage", "bzImage", 64, "little",
         "qemu-x86_64", "EM_X86_64", "linux-x86_64"),
    Arch("mipsel", "mipsel", "unknown", "mips", "vmlinux", "vmlinux", 32, "little",
         "qemu-mipsel", "EM_MIPS"),
    Arch("mips", "mips", "unknown", "mips", "vmlinux", "vmlinux", 32, "big",
         "qemu-mips", "EM_MIPS"),
    Arch("arm", "arm", "unknown", "arm", "arch/arm/boot/zImage", "zImage", 32, "little",
         "qemu-arm", "EM_ARM", "linux-armv4"),
    Arch("armeb", "armeb", "unknown", "arm", "arch/arm/boot/zImage", "zImage", 32, "big",
         "qemu-armeb", "EM_ARM"),
    Arch("aarch64", "aarch64", "unknown", "arm64", "arch/arm64/boot/Image", "Image", 64, "little",
         "qemu-aarch64", "EM_AARCH64", "linux-aarch64"),
    Arch("powerpc", "powerpc", "unknown", "ppc", "vmlinux", "vmlinux", 32, "big",
         "qemu-ppc", "EM_PPC", "linux-ppc"),
    Arch("riscv64", "riscv64", "unknown", "riscv", "arch/riscv/boot/Image", "Image", 64,
         "little", "qemu-riscv64", "EM_RISCV"),
)  # fmt: skip

ARCHES: dict[str, Arch] = {a.name: a for a in _TABLE}


@cache
def target_arch(name: str, cpu: str | None = None) -> Arch:
    """The row for zig's architecture name, bound to the board's cpu; a ConfigError naming the
    known ones for an architecture the table lacks."""
    try:
        return dataclasses.replace(ARCHES[name], cpu=cpu)
    except KeyError:
        known = ", ".join(sorted(ARCHES))
        raise ConfigError(
            f"[target] arch = {name!r} is not an architecture fwbuild knows the build systems' "
            f"names for (known: {known}); use zig's name for it, or add a row to fwbuild/arch.py"
        ) from None
