"""A missing cross toolchain is named, with how to install it, before any long build starts; the
long first warm-up of zig's libc says what it is doing."""

from __future__ import annotations

import os
import re
from pathlib import Path

from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer


def test_missing_toolchain_is_reported_first(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    board = proj / "configs" / "board.toml"
    board.write_text(
        board.read_text() + '\n[toolchains.kernel]\nkind = "gcc"\nprefix = "nosuch-linux-gnu-"\n'
        'install = "apt-get install gcc-nosuch-linux-gnu"\n'
    )
    recipe = proj / "recipes" / "hello.py"
    recipe.write_text(recipe.read_text().replace('    license = "MIT"', '    license = "MIT"\n'
                                                 '    toolchain = "kernel"'))  # fmt: skip
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "nosuch-linux-gnu-gcc" in run.output
    assert "apt-get install gcc-nosuch-linux-gnu" in run.output
    assert not any(t.startswith(("configure:", "build:")) for t in run.ran), run.ran


def test_unknown_toolchain_name_is_a_board_error(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    recipe = proj / "recipes" / "hello.py"
    recipe.write_text(recipe.read_text().replace('    license = "MIT"', '    license = "MIT"\n'
                                                 '    toolchain = "dsp"'))  # fmt: skip
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "toolchain 'dsp' is not defined" in run.output and "[toolchains.dsp]" in run.output
    assert "Traceback" not in run.output


def test_first_libc_warm_up_says_what_it_does_and_how_long_it_took(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    # A zig cache this machine has not warmed up through fwbuild, with the machine's cache inside
    # it (so zig itself has the libc already and the test takes seconds, not minutes).
    machine = Path(os.environ.get("ZIG_GLOBAL_CACHE_DIR") or Path.home() / ".cache" / "zig")
    cache = tmp_path / "zig-cache"
    cache.mkdir()
    for sub in ("b", "h", "o", "tmp", "z"):
        (machine / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(machine / sub)
    env = doit_env(ZIG_GLOBAL_CACHE_DIR=str(cache))

    first = run_doit(proj, "toolchain", env=env)
    assert first.returncode == 0, first.output
    lines = first.output.splitlines()
    before = [i for i, line in enumerate(lines) if "building zig's musl libc cache" in line]
    after = [
        i for i, line in enumerate(lines) if re.search(r"libc cache is ready after \d+ s", line)
    ]
    assert len(before) == 1 and len(after) == 1, first.output
    assert before[0] < after[0]
    assert "i586" in lines[before[0]] and "once for this zig" in lines[before[0]]
    assert "a few minutes" in lines[before[0]] and str(cache) in lines[before[0]]

    # another build directory on the same machine: the cache is warm, nothing to announce
    env["FWBUILD_BUILD_DIR"] = str(tmp_path / "build2")
    second = run_doit(proj, "toolchain", env=env)
    assert second.returncode == 0, second.output
    assert "toolchain" in second.ran  # it did run (a new build directory has no stamp)
    assert "libc cache" not in second.output, second.output
    assert "-mcpu=i586: ok" in second.output


MIPSEL_TARGET = (
    '[target]\narch = "mipsel"\ncpu = "mips32r2"\nlibc = "musleabi"\n'
    'triplet = "mipsel-linux-musl"\n'
)


def _retarget(proj: Path, target: str) -> Path:
    board = proj / "configs" / "board.toml"
    text = board.read_text()
    start, end = text.index("[target]"), text.index("[variants]")
    board.write_text(text[:start] + target + "\n" + text[end:])
    return board


def test_a_strip_that_cannot_read_the_target_fails_doit_toolchain_by_name(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """The host's binutils strip reads only x86 ELF: on a mipsel board `doit toolchain` fails,
    naming the strip, the target and the fix, before any package is built (it once said ok,
    and BusyBox's build and the rootfs strip failed later)."""
    proj = make_project(tmp_path / "proj", dist, server.url)
    _retarget(proj, MIPSEL_TARGET + 'strip = "strip"\n')
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "Traceback" not in run.output
    assert "the strip tool `strip` cannot strip a mipsel ELF file built for mipsel-linux-musl" in (
        run.output
    )
    assert "leave [target] strip unset for llvm-strip" in run.output
    assert "apt-get install llvm" in run.output
    assert not any(t.startswith(("configure:", "build:")) for t in run.ran), run.ran


def test_a_missing_strip_is_named_with_the_other_problems(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    _retarget(proj, MIPSEL_TARGET + 'strip = "nosuch-linux-strip"\n')
    run = run_doit(proj, "toolchain")
    assert run.returncode != 0 and "Traceback" not in run.output
    assert "`nosuch-linux-strip`, the strip for the target's mipsel ELF files, is not on PATH" in (
        run.output
    )
    assert "set [target] strip to a strip that reads mipsel ELF files" in run.output


def test_the_strip_is_part_of_the_toolchain_identity(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """The strip (its path and version) is hashed into every configure key: another strip
    rebuilds, as another compiler does; the default is llvm-strip, for every target."""
    from fwbuild.project import Project

    proj = make_project(tmp_path / "proj", dist, server.url)
    board = proj / "configs" / "board.toml"
    project = Project.load(board)
    strip = project.stage_inputs("hello", "configure")["toolchain"]["strip"]
    assert strip["command"] == "llvm-strip"
    assert Path(strip["path"]).name.startswith("llvm-strip") and "LLVM" in strip["version"]
    wrapper = Path(project.toolchain.env()["STRIP"]).read_text()
    assert strip["path"] in wrapper or "llvm-strip" in wrapper
    key = project.key("hello", "configure")
    text = board.read_text()
    board.write_text(text.replace('triplet = "i586-linux-musl"', 'triplet = "i586-linux-musl"\n'
                                  'strip = "i686-linux-gnu-strip"'))  # fmt: skip
    other = Project.load(board)
    assert other.stage_inputs("hello", "configure")["toolchain"]["strip"]["command"] == (
        "i686-linux-gnu-strip"
    )
    assert other.key("hello", "configure") != key


def _missing_symbols_header(path: Path) -> list[str]:
    """A header whose includer calls 30 functions that exist nowhere."""
    names = [f"fwbuild_missing_symbol_{i:02d}" for i in range(30)]
    path.write_text(
        "".join(f"void {n}(void);\n" for n in names)
        + "__attribute__((constructor)) static void use_them(void) {\n"
        + "".join(f"    {n}();\n" for n in names)
        + "}\n"
    )
    return names


def _every_symbol_named_whole(output: str, names: list[str]) -> None:
    shown = [line for line in output.splitlines() if "undefined symbol: " in line]
    for name in names:
        assert any(line.endswith(f"undefined symbol: {name}") for line in shown), (name, output)


def test_doit_toolchain_names_every_missing_symbol_whole(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """The board's flags make the trivial program miss 30 symbols: `doit toolchain` shows all
    30 ``undefined symbol`` lines, each whole (it showed zig's last 600 characters: 2 of
    them, the first cut mid-word)."""
    proj = make_project(tmp_path / "proj", dist, server.url)
    names = _missing_symbols_header(tmp_path / "missing.h")
    board = proj / "configs" / "board.toml"
    flags = f'cflags = ["-O2", "-include", "{tmp_path / "missing.h"}"]'
    board.write_text(board.read_text().replace('cflags = ["-O2"]', flags))
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "Traceback" not in run.output
    assert "cannot build a trivial static program" in run.output
    _every_symbol_named_whole(run.output, names)


def test_a_failing_link_step_names_every_missing_symbol_whole(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """A package's link missing 30 symbols: the failure shows every ``undefined symbol`` line
    of the log, whole, although the log's last lines hold only a few of them."""
    proj = make_project(tmp_path / "proj", dist, server.url)
    names = _missing_symbols_header(tmp_path / "missing.h")
    recipe = proj / "recipes" / "hello.py"
    text = recipe.read_text()
    assert 'return ["GATE=' in text
    # the compiler includes the header in every compile (CFLAGS keep their -I for libgreet)
    include = f'"CC=" + ctx.env["CC"] + " -include {tmp_path / "missing.h"}", '
    recipe.write_text(text.replace('return ["GATE=', f"return [{include}" + '"GATE='))
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "Traceback" not in run.output
    assert "build:hello" in run.output and "error lines of" in run.output
    _every_symbol_named_whole(run.output, names)


def test_board_ldflags_reach_a_link_whose_ldflags_the_recipe_emptied(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """The board's ldflags ride on the compiler's wrapper: a link gets them even when the
    recipe passes ``LDFLAGS=`` (ppp's does). Here they name an object whose constructor
    prints a line: hello, linked with ``LDFLAGS=-static``, prints it under qemu."""
    import subprocess
    import sys

    from conftest import need

    mark = tmp_path / "mark.o"
    (tmp_path / "mark.c").write_text(
        "#include <stdio.h>\n"
        '__attribute__((constructor)) static void mark(void) { puts("board ldflags linked"); }\n'
    )
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "x86-linux-musl",
                    "-mcpu=i586", "-c", "-o", str(mark), str(tmp_path / "mark.c")],
                   check=True)  # fmt: skip
    proj = make_project(tmp_path / "proj", dist, server.url)
    board = proj / "configs" / "board.toml"
    text = board.read_text().replace('cflags = ["-O2"]', f'cflags = ["-O2"]\nldflags = ["{mark}"]')
    board.write_text(text)
    recipe = proj / "recipes" / "hello.py"
    # LDFLAGS on make's line: only the dependencies' -L (as a recipe keeping flags out would)
    only_l = '"LDFLAGS=" + " ".join(f for f in ctx.env["LDFLAGS"].split() if f[:2] == "-L"), '
    recipe.write_text(recipe.read_text().replace('return ["GATE=', f"return [{only_l}" + '"GATE='))
    run = run_doit(proj, "install:hello")
    assert run.returncode == 0, run.output
    build_log = (proj / "build" / "hello" / "logs" / "build.log").read_text()
    assert "LDFLAGS=-L" in build_log and str(mark) not in build_log
    hello = proj / "build" / "hello" / "staging" / "usr" / "bin" / "hello"
    result = subprocess.run([need("qemu-i386"), "-cpu", "pentium", str(hello)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.stdout.splitlines()[0] == "board ldflags linked", result.stdout
