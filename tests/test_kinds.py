"""Recipes that are declarations (fwbuild.kinds, fwbuild.commands): a new package of a known
kind is one screen of data, built with zig and run on an emulated Pentium; ``doit info`` shows
what it declares; a changed licence text stops the build until the digest is reviewed."""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need
from elftools.elf.elffile import ELFFile
from support.doitrun import DoitRun, run_doit
from support.genpkgs import TALLY_FILES, Dist, add_tally_package, make_project
from support.httpserver import FaultServer

from fwbuild.arch import target_arch
from fwbuild.commands import Make, Variant, expand
from fwbuild.config import load_board
from fwbuild.errors import ConfigError
from fwbuild.recipe import File, Package

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tally(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist
) -> Iterator[tuple[Path, Path, DoitRun]]:
    with FaultServer(mirror_root) as srv:
        project = make_project(tmp_path_factory.mktemp("kinds"), dist, srv.url)
        recipe = add_tally_package(project, srv.url)
        run = run_doit(project, "install:tally")
        yield project, recipe, run


def test_a_declarations_only_recipe_builds_and_runs_on_a_pentium(
    tally: tuple[Path, Path, DoitRun],
) -> None:
    project, recipe, run = tally
    assert run.returncode == 0, run.output
    tree = ast.parse(recipe.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)], "no methods"

    configure_log = (project / "build" / "tally" / "logs" / "configure.log").read_text()
    # the kind derived the host from the board's [target] (x86, i586), in config.sub's spelling
    assert "--host=i586-pc-linux-gnu" in configure_log and "--disable-nls" in configure_log
    build_log = (project / "build" / "tally" / "logs" / "build.log").read_text()
    assert "-std=gnu89" in build_log  # make_variables, the toolchain's CFLAGS filled in
    assert "i586-linux-musl-cc" in build_log  # the toolchain's CC, not the host's

    staging = project / "build" / "tally" / "staging"
    binary = staging / "usr" / "bin" / "tally"
    assert binary.stat().st_mode & 0o777 == 0o755
    assert (staging / "etc" / "tally.conf").stat().st_mode & 0o777 == 0o644
    with binary.open("rb") as fh:
        assert ELFFile(fh).header["e_machine"] == target_arch("x86", "i586").elf_machine
    out = subprocess.run(
        [need("qemu-i386"), "-cpu", "pentium", str(binary), "one two\nthree"],
        capture_output=True,
        text=True,
        check=False,
    )
    # our patch (a last line without newline counts) was applied over the pristine tarball
    assert out.returncode == 0 and out.stdout == "tally 2.1 (i586-pc-linux-gnu): 2 lines 3 words\n"


def test_install_files_are_the_rootfs_list(tally: tuple[Path, Path, DoitRun]) -> None:
    project, _, run = tally
    assert run.returncode == 0, run.output
    rootfs = run_doit(project, "rootfs")
    assert rootfs.returncode == 0, rootfs.output
    tree = project / "build" / "rootfs"
    assert (tree / "usr" / "bin" / "tally").is_file()
    assert (tree / "etc" / "tally.conf").read_text() == TALLY_FILES["tally.conf"]


def test_info_prints_what_the_recipe_declares(tally: tuple[Path, Path, DoitRun]) -> None:
    project, _, _ = tally
    run = run_doit(project, "info:tally")
    assert run.returncode == 0, run.output
    out = run.output
    copying = hashlib.sha256(TALLY_FILES["COPYING"].encode()).hexdigest()
    for expected in (
        "tally 2.1",
        "recipes/tally.py, a AutotoolsPackage",
        f"COPYING  sha256:{copying}",
        "tally-2.1.tar.gz",
        "/upstream/tally-2.1.tar.gz",
        "/primary/tally-2.1.tar.gz",  # the board's primary mirror comes first
        "/backup/tally-2.1.tar.gz",
        "ours patches/tally/2.1/0001-count-last-line-without-newline.patch",
        "tally: count a last line that has no newline",  # what our patch fixes
        "./configure --host=i586-pc-linux-gnu --build={build} --prefix=/usr --disable-nls",
        "every make: CFLAGS={CFLAGS} -std=gnu89",
        "usr/bin/tally <- src/tally  0755",
        "etc/tally.conf <- tally.conf  0644",
        # what each stage's key is made of, from the keys themselves
        "configure  the patch stage; version (2.1); recipe (fwbuild/",
        "recipes/tally.py); toolchain (kind=zig",
        "install    the build stage",
    ):
        assert expected in out, (expected, out)
    hello = run_doit(project, "info:hello")
    assert "downloaded hello-1.0-extra.patch.gz  when +extra (active)" in hello.output
    assert "extra = true" in hello.output and "Needed by:  nothing" in hello.output
    assert "Depends on: libgreet" in hello.output
    listed = run_doit(project, "list")
    assert re.search(r"^info +print what a recipe declares", listed.output, re.M), listed.output


def test_a_changed_licence_text_stops_the_install_until_reviewed(
    tally: tuple[Path, Path, DoitRun],
) -> None:
    project, recipe, first = tally
    assert first.returncode == 0, first.output
    good = hashlib.sha256(TALLY_FILES["COPYING"].encode()).hexdigest()
    stale = "0" * 64  # the digest a previous version's licence had
    text = recipe.read_text()
    recipe.write_text(text.replace(good, stale))
    try:
        run = run_doit(project, "install:tally")
        assert run.returncode != 0
        out = " ".join(run.output.split())
        assert "licence file COPYING has changed" in out, out
        assert f"expects sha256:{stale}" in out and f"has sha256:{good}" in out, out
        assert f"put sha256:{good} in license_files" in out and "Read the new text" in out
        assert "Traceback" not in run.output
        assert not (project / "build" / "tally" / "stamps" / "install.json").exists()
    finally:
        recipe.write_text(text)
    again = run_doit(project, "install:tally")
    assert again.returncode == 0, again.output


def test_a_malformed_licence_digest_is_refused_when_the_recipe_loads() -> None:
    with pytest.raises(ConfigError, match=r"license_files\['COPYING'\] = 'sha256:abc'"):

        class Bad(Package):
            name = "bad"
            version = "1"
            license_files = {"COPYING": "sha256:abc"}  # noqa: RUF012


def test_unknown_placeholder_names_the_step_and_the_known_names() -> None:
    with pytest.raises(ConfigError) as err:
        expand("{CFLAGZ} -O2", {"CFLAGS": "-Os", "CC": "cc"}, where="recipes/x.py: make")
    text = str(err.value)
    assert "recipes/x.py: make" in text and "'CFLAGZ'" in text and "{CFLAGS}" in text


def test_install_files_give_target_files_and_refuse_a_bad_entry() -> None:
    class Prog(Package):
        name = "prog"
        version = "1"
        install_files = {  # noqa: RUF012
            "usr/bin/prog": ("prog", 0o755),
            "usr/lib/prog/selftest": File("selftest", 0o755, rootfs=False),
        }

    assert Prog.target_files == {"usr/bin/prog": 0o755}
    assert Prog.install_files["usr/bin/prog"] == File("prog", 0o755)
    with pytest.raises(ConfigError, match=r"install_files\['usr/bin/x'\]"):

        class Bad(Package):
            name = "bad"
            version = "1"
            install_files = {"usr/bin/x": "x"}  # noqa: RUF012


def test_make_step_command_line() -> None:
    class Prog(Package):
        name = "prog"
        version = "1"
        make_variables = {"V": "1"}  # noqa: RUF012
        variants = {"fast": Variant("a faster build", default=True)}  # noqa: RUF012

    prog = Prog(board=load_board(REPO / "configs" / "siso.toml"), recipe_file=Path("prog.py"))
    assert prog.variant_value("fast") is True  # the board leaves it out: the declared default
    assert prog.variant_values == {"fast": True}
    values = {"CC": "zcc", "CFLAGS": "-Os", "jobs": "2", "arch": target_arch("mipsel", None)}
    step = Make("src", "all", CC="{CC}", CFLAGS="{CFLAGS} -std=gnu89", ARCH="{arch.linux_arch}")
    argv = step.argv(prog, values)
    assert argv == ["make", "-C", "src", "-j2", "V=1", "CC=zcc", "CFLAGS=-Os -std=gnu89",
                    "ARCH=mips", "all"]  # fmt: skip
    assert Make(".", "install", jobs=1).argv(prog, values) == [
        "make",
        "-j1",
        "V=1",
        "install",
    ]


def test_the_code_of_declared_steps_is_in_the_stage_key() -> None:
    """Editing how a Make step is run (fwbuild/commands.py) or the target's names
    (fwbuild/arch.py) changes every declarative package's configure key."""
    from fwbuild.codedigest import files_digests

    class Prog(Package):
        name = "prog"
        version = "1"

    names = [row[0] for row in files_digests(Prog, Path(__file__), REPO / "recipes", {})]
    assert {"fwbuild/commands.py", "fwbuild/arch.py", "fwbuild/recipe.py"} <= set(names), names


@pytest.fixture
def siso_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """configs/siso.toml in a directory of the test's (the project stays this checkout)."""
    for name in ("FWBUILD_OVERRIDES", "ROOTFS_DIR", "FWBUILD_OUTPUT_DIR", "FWBUILD_DL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FWBUILD_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("FWBUILD_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("FWBUILD_SECRETS", str(tmp_path / "secrets.toml"))
    (tmp_path / "configs").mkdir()
    return tmp_path / "configs" / "board.toml"


def test_kconfig_fragments_come_from_the_board(siso_copy: Path) -> None:
    from fwbuild.project import Project

    text = (REPO / "configs" / "siso.toml").read_text()
    siso_copy.write_text(text)
    project = Project.load(siso_copy, REPO)
    linux, busybox = project.packages["linux"], project.packages["busybox"]
    # the variant picks the fragment; every listed one is a stamp input
    assert linux.fragment_files() == ["configs/linux/siso.fragment", "configs/linux/mppc.fragment"]
    assert "configs/linux/mppe.fragment" in linux.board_files
    assert busybox.fragment_files() == ["configs/busybox.fragment"]
    assert project.packages["linux"].image_files == {"bzImage": "boot/bzImage"}

    siso_copy.write_text(text.replace('busybox = ["configs/busybox.fragment"]\n', ""))
    with pytest.raises(ConfigError) as err:
        Project.load(siso_copy, REPO)
    message = str(err.value)
    assert "busybox is configured with Kconfig fragments" in message
    assert '`busybox = ["configs/busybox.fragment"]` under [kconfig]' in message

    siso_copy.write_text(text.replace('"configs/busybox.fragment"', '"configs/bb.fragment"'))
    with pytest.raises(ConfigError, match=r"\[kconfig\] busybox lists configs/bb.fragment"):
        Project.load(siso_copy, REPO)
