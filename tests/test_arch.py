"""The board's target architecture under the names other build systems use (fwbuild.arch): what
recipes pass as ``--host``, ``ARCH=``, OpenSSL's target, and what tests run binaries with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from fwbuild.arch import ARCHES, target_arch
from fwbuild.errors import ConfigError
from fwbuild.toolchain import ZigToolchain


def test_the_boards_names_for_the_three_targets() -> None:
    x86 = target_arch("x86", "i586")
    assert x86.gnu_host == "i586-pc-linux-gnu"
    assert (x86.linux_arch, x86.kernel_image, x86.kernel_target) == (
        "i386",
        "arch/i386/boot/bzImage",
        "bzImage",
    )
    assert x86.kernel_image_name == "bzImage"
    assert x86.kernel_defconfig == "arch/i386/defconfig"
    assert x86.openssl_target == "linux-generic32"
    assert x86.qemu_command == ["qemu-i386", "-cpu", "pentium"]
    assert x86.elf_machine == "EM_386"

    mipsel = target_arch("mipsel", "mips32")
    assert mipsel.gnu_host == "mipsel-unknown-linux-gnu"
    assert (mipsel.linux_arch, mipsel.qemu_command, mipsel.elf_machine) == (
        "mips",
        ["qemu-mipsel"],
        "EM_MIPS",
    )
    assert mipsel.openssl_target == "linux-generic32" and mipsel.endian == "little"

    arm = target_arch("arm", "arm926ej_s")
    assert arm.gnu_host == "arm-unknown-linux-gnu"
    assert (arm.linux_arch, arm.kernel_image, arm.qemu_user, arm.elf_machine) == (
        "arm",
        "arch/arm/boot/zImage",
        "qemu-arm",
        "EM_ARM",
    )


@pytest.mark.parametrize(
    ("cpu", "host"),
    [("i386", "i386"), ("i486", "i486"), ("i586", "i586"), ("pentium_mmx", "i586"),
     ("i686", "i686"), ("pentium4", "i686")],
)  # fmt: skip
def test_x86_host_cpu_says_which_instructions_configure_may_assume(cpu: str, host: str) -> None:
    assert target_arch("x86", cpu).gnu_host == f"{host}-pc-linux-gnu"


def test_an_unknown_arch_is_a_board_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        target_arch("sparc", None)
    text = str(err.value)
    assert "[target] arch = 'sparc'" in text and "mipsel" in text and "fwbuild/arch.py" in text


@pytest.mark.parametrize("name", ["x86", "mipsel", "arm", "aarch64", "x86_64"])
def test_elf_machine_is_what_zig_writes_for_the_arch(name: str, tmp_path: Path) -> None:
    """The table's ELF machine and word size are those of an object zig compiles for it."""
    zig = ZigToolchain.zig_binary()
    assert zig is not None, "ziglang is not installed (scripts/setup-debian)"
    src = tmp_path / "f.c"
    src.write_text("int f(int x) { return x + 1; }\n")
    obj = tmp_path / "f.o"
    subprocess.run(
        [zig, "cc", "-target", f"{name}-linux-musl", "-c", "-o", obj, src],
        check=True,
        capture_output=True,
    )
    arch = ARCHES[name]
    with obj.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf.header["e_machine"] == arch.elf_machine
        assert elf.elfclass == arch.bits
        assert elf.little_endian == (arch.endian == "little")
