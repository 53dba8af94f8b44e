"""A missing cross toolchain is named, with how to install it, before any long build starts."""

from __future__ import annotations

from pathlib import Path

from support.doitrun import run_doit
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
