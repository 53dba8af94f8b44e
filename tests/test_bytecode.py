"""A recipe edited within one second to the same size is the recipe that runs (fwbuild.bytecode).

Python's default bytecode cache is reused while the source's mtime, in whole seconds, and size
match what it recorded: the same edit then left a stage key unchanged and the build stale. The
mtime is set back by hand here, so the case does not depend on the clock's luck."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from support.scalepkgs import minimal_board

from fwbuild.project import Project

pytestmark = pytest.mark.unit

RECIPE = """\
from fwbuild.recipe import Package
from _helper import VERSION


class P(Package):
    name = "alpha"
    version = VERSION
    license = "MIT"
    toolchain = "none"

    def install(self, ctx):
        (ctx.staging / "alpha").write_text("alpha\\n")
"""


def _project(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "recipes").mkdir()
    (root / "configs" / "board.toml").write_text(minimal_board("bytecode", ["alpha"]))
    (root / "recipes" / "alpha.py").write_text(RECIPE)
    (root / "recipes" / "_helper.py").write_text('VERSION = "1.0.1"\n')
    return root / "configs" / "board.toml"


def _same_second_same_size_edit(path: Path, old: str, new: str) -> None:
    assert len(old) == len(new)
    before = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if in the same second
    assert path.stat().st_size == before.st_size


@pytest.fixture
def writes_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.delitem(sys.modules, "_helper", raising=False)


def test_a_same_size_edit_in_the_same_second_changes_the_key(
    tmp_path: Path, writes_bytecode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = _project(tmp_path)
    helper = tmp_path / "recipes" / "_helper.py"
    first = Project.load(board, tmp_path)
    assert first.packages["alpha"].version == "1.0.1"
    key = first.key("alpha", "configure")
    # the helper's bytecode is cached by a hash of its source, so Python would notice anyway:
    cached = Path(importlib.util.cache_from_source(str(helper)))
    assert cached.read_bytes()[4:8] == (0b11).to_bytes(4, "little")

    _same_second_same_size_edit(helper, "1.0.1", "1.0.2")
    monkeypatch.delitem(sys.modules, "_helper")  # a new process imports it again
    second = Project.load(board, tmp_path)
    assert second.packages["alpha"].version == "1.0.2"
    assert second.key("alpha", "configure") != key


def test_a_timestamp_pyc_left_by_an_earlier_run_is_replaced(
    tmp_path: Path, writes_bytecode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stale case itself: a timestamp pyc of the old text, the source edited in the same
    second to the same size. Without the replacement Python would run the old text."""
    import py_compile

    board = _project(tmp_path)
    recipe = tmp_path / "recipes" / "alpha.py"
    py_compile.compile(str(recipe), doraise=True)  # Python's default kind, of version 1.0.1
    _same_second_same_size_edit(recipe, "version = VERSION", 'version = "9.9.9"')
    loaded = Project.load(board, tmp_path)
    assert loaded.packages["alpha"].version == "9.9.9"


def test_no_bytecode_is_written_where_python_writes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.delitem(sys.modules, "_helper", raising=False)
    board = _project(tmp_path)
    Project.load(board, tmp_path)
    assert not (tmp_path / "recipes" / "__pycache__").exists()
