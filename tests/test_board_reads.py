"""A recipe reads the board only through what its stage keys cover.

``self.setting(section)`` refuses a section not in ``board_sections``, ``self.board_file(rel)``
a file not in ``board_files``, and ``self.board`` hides the sections' raw contents
(fwbuild.boardview): a read that a key does not cover fails instead of building something that
a later change of that section would leave stale.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from support.doitrun import run_doit
from support.scalepkgs import DODO, minimal_board

from fwbuild.errors import ConfigError
from fwbuild.project import Project
from fwbuild.steps import Context, clean_env
from fwbuild.toolchain import build_triplet

REPO = Path(__file__).resolve().parents[1]
# every board of the repository (a profile such as siso-client.toml included)
BOARDS = sorted(p.name for p in (REPO / "configs").glob("*.toml") if "[board]" in p.read_text())

BOARD = minimal_board("readboard", ["reader"])

READER = """\
from fwbuild.recipe import Package


class Reader(Package):
    name = "reader"
    version = "1"
    license = "MIT"
    toolchain = "none"
    board_files = ("configs/declared.txt",)

    def install(self, ctx):
        {read}
"""

UNDECLARED = {
    "a section": ('self.setting("paths")', "without declaring it (board_sections: none)"),
    "the raw sections": ('self.board.data["paths"]', "reads the board's sections directly"),
    "a typed section": ('self.board.settings("paths")', "add 'paths' to `board_sections"),
    "a variant": ('self.board.variant("fancy")', "reads variant 'fancy' without declaring it"),
    "a board file": (
        'self.board_file("configs/board.toml")',
        "without declaring it (board_files: configs/declared.txt)",
    ),
}


@pytest.mark.parametrize(("read", "message"), UNDECLARED.values(), ids=UNDECLARED.keys())
def test_undeclared_board_reads_are_refused(tmp_path: Path, read: str, message: str) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "board.toml").write_text(BOARD)
    (tmp_path / "configs" / "declared.txt").write_text("declared\n")
    (tmp_path / "dodo.py").write_text(DODO)
    (tmp_path / "recipes" / "reader.py").write_text(READER.format(read=read))
    run = run_doit(tmp_path, "rootfs")
    assert run.returncode != 0, run.output
    assert str(tmp_path / "recipes" / "reader.py") in run.output, run.output
    assert message in run.output, run.output
    assert "so that" in run.output and "rebuild" in run.output  # says why, not only what
    assert "Traceback" not in run.output, run.output
    assert not (tmp_path / "build" / "reader" / "stamps" / "install.json").exists()


@pytest.fixture
def siso_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("FWBUILD_OVERRIDES", "ROOTFS_DIR", "FWBUILD_OUTPUT_DIR", "FWBUILD_DL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FWBUILD_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("FWBUILD_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("FWBUILD_SECRETS", str(tmp_path / "secrets.toml"))
    return tmp_path


@pytest.mark.parametrize("board", BOARDS)
def test_every_recipe_reads_only_declared_board_parts(siso_env: Path, board: str) -> None:
    """Every recipe of every board in configs/: its keys (dynamic inputs included) and the steps
    that need no compiler run for real, through the refusing accessors; an undeclared read
    fails."""
    project = Project.load(REPO / "configs" / board, REPO)
    for name, pkg in project.packages.items():
        pkg.validate()
        for stage in ("fetch", "configure", "install"):
            project.key(name, stage)
        if pkg.toolchain != "none":
            continue
        staging = siso_env / "staging" / name
        staging.mkdir(parents=True)
        ctx = Context(
            package=pkg,
            srcdir=siso_env / "src" / name,
            staging=staging,
            deps_staging={},
            toolchain=project.toolchain_for(pkg),
            build_triplet=build_triplet(),
            jobs=1,
            log_path=siso_env / "logs" / f"{name}.log",
            base_env=clean_env({}),
        )
        for step in (pkg.configure, pkg.build, pkg.install):
            step(ctx)
        assert any(staging.rglob("*")), f"{name} installed nothing"
        for stage in ("configure", "install"):  # the inputs it read are the ones it declared
            assert project.stage_inputs(name, stage)
    with pytest.raises(ConfigError, match="reads the board's sections directly"):
        _ = next(iter(project.packages.values())).board.data


def test_no_recipe_names_the_raw_board_sections() -> None:
    """The steps the test above cannot run (compiling ones) are checked by reading them: no
    recipe or helper touches ``board.data``/``.typed``/``.layers``."""
    found = []
    for file in sorted((REPO / "recipes").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"data", "typed", "layers"}
                and isinstance(node.value, ast.Attribute | ast.Name)
                and (getattr(node.value, "attr", None) or getattr(node.value, "id", "")) == "board"
            ):
                found.append(f"{file.name}:{node.lineno}")
    assert not found, f"recipes reading the board's raw sections: {found}"


def test_a_copied_recipe_dir_keeps_its_keys(siso_env: Path) -> None:
    """The code inputs are named relative to recipes/ and fwbuild/: a project moved elsewhere
    (a second checkout) has the same configure keys."""
    moved = siso_env / "moved"
    for part in ("recipes", "configs", "patches", "src"):
        shutil.copytree(
            REPO / part, moved / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    a = Project.load(REPO / "configs" / "siso.toml", REPO)
    b = Project.load(moved / "configs" / "siso.toml", moved)
    for name in a.packages:
        assert (
            a.stage_inputs(name, "configure")["recipe"]
            == (b.stage_inputs(name, "configure")["recipe"])
        ), name


def test_a_target_change_rekeys_a_package_on_another_toolchain(siso_env: Path) -> None:
    """The kernel builds with its own gcc, whose identity says nothing of [target]; its steps
    still read the target through ``self.arch`` (ARCH=, the image): a changed cpu or arch must
    change its configure key, as it changes the userland's."""
    board = (REPO / "configs" / "siso.toml").read_text()
    assert 'cpu = "i586"' in board
    before = Project.load(REPO / "configs" / "siso.toml", REPO)
    assert before.packages["linux"].toolchain != "target"
    changed = siso_env / "siso-i686.toml"
    changed.write_text(board.replace('cpu = "i586"', 'cpu = "i686"', 1))
    after = Project.load(changed, REPO)
    assert after.key("linux", "configure") != before.key("linux", "configure")
    assert after.key("busybox", "configure") != before.key("busybox", "configure")
    # and nothing else about the board moved the kernel's key: the same board, copied
    same = siso_env / "siso-copy.toml"
    same.write_text(board)
    assert Project.load(same, REPO).key("linux", "configure") == before.key("linux", "configure")
