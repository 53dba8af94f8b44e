"""A second board needs no engine or recipe edit: the generated packages (libgreet, an autotools
kind, and hello, a Makefile kind with a downloaded and an own patch) built for a little-endian
MIPS (musl via zig) and an ARMv5TE (zig, and a GNU cross gcc chosen by the board file alone),
stripped into the rootfs by the target's strip, checked with pyelftools and run under qemu-user.

And the board files of this repository for those targets (configs/mipsel.toml,
configs/armv5te.toml) load with the real recipes; a variant a recipe uses that the board does not
set is a load-time error naming the board file, the variant and the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import need
from elftools.elf.elffile import ELFFile
from support.doitrun import run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

from fwbuild.errors import ConfigError
from fwbuild.project import Project

REPO = Path(__file__).resolve().parents[1]
GREETING = "hello: extra\nHello, SISO, from libgreet 1.0\nhello: patched\n"
ARM_GCC = "arm-linux-gnueabi-gcc"
ARM_LIBGCC = "/usr/lib/gcc-cross/arm-linux-gnueabi/12/libgcc.a"  # configs/armv5te.toml's

MIPSEL_TARGET = """[target]
arch = "mipsel"
cpu = "mips32r2"
libc = "musleabi"
triplet = "mipsel-linux-musl"
cflags = ["-O2"]
"""
# As configs/armv5te.toml: zig's ARMv5 runtime lacks the __sync_* helpers; every link gets -Os
# and GNU's libgcc (which has them).
ARMV5TE_ZIG_TARGET = """[target]
arch = "arm"
cpu = "arm926ej_s"
libc = "musleabi"
triplet = "arm-linux-musleabi"
cflags = ["-O2"]
ldflags = ["-Os", "/usr/lib/gcc-cross/arm-linux-gnueabi/12/libgcc.a"]
"""
# Debian's gcc-arm-linux-gnueabi, as a board names it: CPU options are gcc's own spelling.
ARMV5TE_GCC_TARGET = """[target]
arch = "arm"
cpu = "arm926ej-s"
libc = "gnueabi"
triplet = "arm-linux-gnueabi"
cflags = ["-march=armv5te", "-mtune=arm926ej-s", "-marm"]
toolchain = "gnu"

[toolchains.gnu]
kind = "gcc"
prefix = "arm-linux-gnueabi-"
install = "apt-get install gcc-arm-linux-gnueabi binutils-arm-linux-gnueabi libc6-dev-armel-cross"
"""


def with_target(project: Path, target: str) -> Path:
    """The generated board with its [target] replaced."""
    board = project / "configs" / "board.toml"
    text = board.read_text()
    start = text.index("[target]")
    end = text.index("[variants]")
    board.write_text(text[:start] + target + "\n" + text[end:])
    return board


def elf_machine(path: Path) -> tuple[str, bool, bool]:
    """(e_machine, static, has a symbol table) of an ELF file."""
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        static = not any(s.header.p_type == "PT_INTERP" for s in elf.iter_segments())
        symtab = elf.get_section_by_name(".symtab") is not None
        return elf.header.e_machine, static, symtab


@pytest.mark.parametrize(
    ("target", "machine", "qemu"),
    [
        (MIPSEL_TARGET, "EM_MIPS", ["qemu-mipsel"]),
        (ARMV5TE_ZIG_TARGET, "EM_ARM", ["qemu-arm", "-cpu", "arm926"]),
        (ARMV5TE_GCC_TARGET, "EM_ARM", ["qemu-arm", "-cpu", "arm926"]),
    ],
    ids=["mipsel-zig", "armv5te-zig", "armv5te-gnu-gcc"],
)
def test_generated_packages_build_for_the_target_and_run_under_qemu(
    tmp_path: Path, server: FaultServer, dist: Dist, target: str, machine: str, qemu: list[str]
) -> None:
    if "arm-linux-gnueabi" in target:
        need(ARM_GCC)
    proj = make_project(tmp_path / "proj", dist, server.url)
    with_target(proj, target)
    run = run_doit(proj, "rootfs")
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output

    staged = proj / "build" / "hello" / "staging" / "usr" / "bin" / "hello"
    shipped = proj / "build" / "rootfs" / "usr" / "bin" / "hello"
    for path in (staged, shipped, proj / "build" / "rootfs" / "usr" / "bin" / "greet"):
        found, static, _ = elf_machine(path)
        assert (found, static) == (machine, True), path
    # the rootfs copy went through the target's strip; the staged one did not (zig linking
    # at -Os strips by itself: the armv5te board's ldflags)
    assert not elf_machine(shipped)[2]
    assert elf_machine(staged)[2] or '"-Os"' in target

    result = subprocess.run(
        [need(qemu[0]), *qemu[1:], str(shipped)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == GREETING


def test_gnu_gcc_target_identity_is_in_the_keys(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """gcc's version and target machine, the flags and the strip are part of every package's
    configure key: another compiler, flag or strip rebuilds."""
    need(ARM_GCC)
    proj = make_project(tmp_path / "proj", dist, server.url)
    board = with_target(proj, ARMV5TE_GCC_TARGET)
    project = Project.load(board)
    toolchain = project.stage_inputs("hello", "configure")["toolchain"]
    version = subprocess.run([ARM_GCC, "--version"], capture_output=True, text=True).stdout
    assert toolchain["kind"] == "gcc" and toolchain["gcc"] == version.splitlines()[0]
    assert toolchain["machine"] == "arm-linux-gnueabi"
    assert toolchain["cflags"] == ["-march=armv5te", "-mtune=arm926ej-s", "-marm"]
    assert toolchain["strip"]["command"] == "arm-linux-gnueabi-strip"
    assert "GNU strip" in toolchain["strip"]["version"]
    env = project.toolchain.env()
    assert env["CFLAGS"].split() == ["-Os", "-march=armv5te", "-mtune=arm926ej-s", "-marm"]
    assert env["LDFLAGS"].split() == ["-static"]
    assert Path(env["CC"]).name == "arm-linux-gnueabi-cc"
    assert str(shutil.which(ARM_GCC)) in Path(env["CC"]).read_text()
    key = project.key("hello", "configure")

    for change in (
        ('cflags = ["-march=armv5te", "-mtune=arm926ej-s", "-marm"]', 'cflags = ["-march=armv5t"]'),
        ("[toolchains.gnu]", "[toolchains.gnu]\n# same gcc\n"),  # no change: same key
        ('toolchain = "gnu"', 'toolchain = "gnu"\nstrip = "llvm-strip"'),
    ):
        text = board.read_text()
        board.write_text(text.replace(*change))
        other = Project.load(board).key("hello", "configure")
        board.write_text(text)
        assert (other == key) == change[1].startswith("[toolchains.gnu]\n#"), change


def test_unknown_target_toolchain_is_a_load_time_error(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    board = with_target(proj, ARMV5TE_GCC_TARGET.replace('toolchain = "gnu"', 'toolchain = "gcc"'))
    run = run_doit(proj, "list")
    assert run.returncode != 0 and "Traceback" not in run.output
    assert str(board) in run.output
    assert '[target] toolchain = "gcc" names no [toolchains.gcc]' in run.output
    assert "the board defines: gnu" in run.output


def test_a_variant_the_board_does_not_set_is_a_load_time_error(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """hello's patch is applied ``when="+extra"``: a board without ``extra`` stops at load,
    before any task, naming the board file, the variant and what to add (not a traceback at
    the first hello task)."""
    proj = make_project(tmp_path / "proj", dist, server.url)
    board = with_target(proj, MIPSEL_TARGET)
    board.write_text(board.read_text().replace("[variants]\nextra = true\n", ""))
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "Traceback" not in run.output
    assert not run.ran, run.ran
    assert str(board) in run.output and "extra" in run.output
    assert "add `extra = true` or `false` to [variants]" in run.output


@pytest.mark.parametrize("name", ["mipsel", "armv5te"])
def test_repository_board_loads_with_the_real_recipes(name: str) -> None:
    """configs/<name>.toml: the userland packages, with the same recipes as the SISO board
    (and no kernel, no VPN configuration); its build directory is its own."""
    file = REPO / "configs" / f"{name}.toml"
    build = Project.load(file, REPO).board.paths.build
    existed = build.exists()
    project = Project.load(file, REPO)
    project.toolchain.identity()
    assert build.exists() == existed  # loading a board writes nothing (doit list)
    userland = {"busybox", "rngseed", "ipsec-tools", "openssl", "ppp", "l2tpd"}
    assert set(project.packages) == userland
    siso = Project.load(REPO / "configs" / "siso.toml")
    assert project.board.paths.build != siso.board.paths.build
    strip = project.toolchain.identity()["strip"]
    assert isinstance(strip, dict) and strip["command"] == "llvm-strip"
    # a file the board links must be where scripts/setup-debian's packages put it
    for flag in project.board.target.ldflags:
        if flag.startswith("/"):
            need(ARM_GCC)
            assert Path(flag).is_file(), flag


def test_repository_board_without_mppc_names_the_fix(tmp_path: Path) -> None:
    """The README's promise for a board without ``[variants] mppc``: ppp's recipe uses it."""
    text = (REPO / "configs" / "mipsel.toml").read_text()
    board = tmp_path / "configs" / "nomppc.toml"
    board.parent.mkdir()
    board.write_text(re.sub(r"\[variants\]\n(#.*\n)*mppc = \w+.*\n", "", text))
    assert "mppc" not in board.read_text()
    with pytest.raises(ConfigError) as caught:
        Project.load(board, REPO)
    message = str(caught.value)
    assert str(board) in message and "mppc" in message and "recipes/ppp.py" in message
    assert "add `mppc = true` or `false` to [variants]" in message


@pytest.mark.parametrize(
    ("arch", "cpu", "libc", "ldflags", "qemu"),
    [
        ("mipsel", "mips32r2", "musleabi", (), ["qemu-mipsel", "-cpu", "24Kc"]),
        ("arm", "arm926ej_s", "musleabi", ("-Os", ARM_LIBGCC), ["qemu-arm", "-cpu", "arm926"]),
    ],
    ids=["mipsel", "armv5te"],
)  # fmt: skip
def test_rngseed_is_portable(
    tmp_path: Path, arch: str, cpu: str, libc: str, ldflags: tuple[str, ...], qemu: list[str]
) -> None:
    """src/rngseed/rngseed.c reads the x86 time stamp counter only on x86; elsewhere it takes
    the kernel's monotonic clock, so it builds for MIPS and ARM and, with no seed to credit,
    falls back to timing jitter there (crediting fails under qemu-user: RNDADDENTROPY)."""
    if ldflags:
        need(ARM_GCC)
    from fwbuild.toolchain import ZigToolchain

    toolchain = ZigToolchain(
        arch=arch, cpu=cpu, libc=libc, triplet=f"{arch}-linux-{libc}", bindir=tmp_path / "bin",
        ldflags=ldflags,
    )  # fmt: skip
    env = {**os.environ, **toolchain.env()}
    out = tmp_path / "rngseed"
    built = subprocess.run(
        [env["CC"], *env["CFLAGS"].split(), *env["LDFLAGS"].split(), "-o", str(out),
         str(REPO / "src" / "rngseed" / "rngseed.c")],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert elf_machine(out)[:2] == ({"mipsel": "EM_MIPS", "arm": "EM_ARM"}[arch], True)
    result = subprocess.run(
        [need(qemu[0]), *qemu[1:], str(out), str(tmp_path / "no-such-dir" / "seed")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "no provisioned seed" in result.stderr, result.stderr
    assert "crediting CPU timing jitter" in result.stderr
    assert result.returncode == 1  # nothing credited (qemu-user), and the seed cannot be saved
