"""Scale (issue 15): boards of thousands of generated trivial packages load, key and no-op
without recursion limits, with stamps that stay small however deep the dependencies go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.doitrun import run_doit
from support.scalepkgs import make_scale_project, name_of

from fwbuild.errors import ConfigError
from fwbuild.project import Project


@pytest.mark.unit
def test_chain_of_5000_loads_and_keys_without_recursion(tmp_path: Path) -> None:
    root = make_scale_project(tmp_path / "chain", 5000, "chain")
    project = Project.load(root / "configs" / "board.toml")
    top = name_of(4999)
    assert len(project.packages) == 5000
    key = project.key(top, "install")  # walks 5,000 packages deep: no RecursionError
    assert len(key) == 64 and project.key(top, "install") == key
    closure = project.closure(top)
    assert closure == [name_of(i) for i in range(4999)]  # dependencies first
    # a configure stamp lists the direct dependency only, however deep the chain
    assert project.stage_inputs(top, "configure")["deps"] == {
        name_of(4998): project.key(name_of(4998), "install")
    }
    # every task doit would be given (made in-process: doit's own task objects for 35,000 tasks
    # cost seconds; the real doit runs are the smaller chain below)
    from fwbuild.tasks import make_tasks

    made = 0
    for creator in make_tasks(Project.load(root / "configs" / "board.toml")).values():
        created = creator.create_doit_tasks()
        made += 1 if isinstance(created, dict) else sum(1 for _ in created)
    assert made > 5 * 5000


@pytest.mark.unit
def test_a_deep_dependency_still_reaches_the_top_key(tmp_path: Path) -> None:
    """Stamps hold only the direct dependencies' keys; a change at the bottom of a chain must
    still change the key of the package at the top (each install key covers its own deps)."""
    root = make_scale_project(tmp_path / "chain", 50, "chain")
    board = root / "configs" / "board.toml"
    before = Project.load(board).key(name_of(49), "configure")
    bottom = root / "recipes" / f"{name_of(0)}.py"
    bottom.write_text(bottom.read_text().replace('version = "1"', 'version = "2"'))
    after = Project.load(board)
    assert after.key(name_of(49), "configure") != before
    assert after.key(name_of(49), "fetch") == Project.load(board).key(name_of(49), "fetch")


def test_deep_chain_build_then_noop(tmp_path: Path) -> None:
    """A real doit build of a chain, then a no-op: nothing runs, the report of the build is
    kept, an alias with no actions of its own does not count as run, stamps stay small."""
    n = 120
    root = make_scale_project(tmp_path / "chain", n, "chain")
    board = root / "configs" / "board.toml"
    top = name_of(n - 1)
    board.write_text(
        board.read_text() + f'\n[tasks.top]\ndoc = "the top package"\nrun = ["install:{top}"]\n'
    )
    first = run_doit(root, "rootfs", timeout=300)
    assert first.returncode == 0, first.output[-3000:]
    assert f"install:{top}" in first.ran and "rootfs" in first.ran
    report = root / "build" / "report.json"
    built = report.read_bytes()
    assert json.loads(built)["counts"]["ran"] == 5 * n + 2  # the stages, toolchain, rootfs

    again = run_doit(root, "rootfs")
    assert again.returncode == 0 and again.ran == set(), again.output[-3000:]
    assert "report: 0 ran, 0 failed" in again.output and report.read_bytes() == built

    alias = run_doit(root, "top")
    assert alias.returncode == 0 and "report: 0 ran, 0 failed" in alias.output, alias.output

    # total stamp size linear in N: the deepest package's stamps are no bigger than the second's
    def stamps(name: str) -> int:
        return sum(p.stat().st_size for p in (root / "build" / name / "stamps").glob("*.json"))

    assert stamps(top) <= stamps(name_of(1)) + 64


@pytest.mark.unit
def test_zig_version_read_from_its_dist_info_is_importlibs() -> None:
    """The toolchain's identity (in every configure key) must not change with the faster read
    of ziglang's version: a different string would rebuild every package once."""
    from importlib import metadata

    from fwbuild.toolchain import _zig_version

    _zig_version.cache_clear()
    assert _zig_version() == metadata.version("ziglang")


def test_a_dependency_cycle_deep_in_a_chain_is_named(tmp_path: Path) -> None:
    """The iterative loader still finds a cycle and names it, also thousands deep, and doit
    says so in one line instead of a traceback."""
    root = make_scale_project(tmp_path / "chain", 2000, "chain")
    bottom = root / "recipes" / f"{name_of(0)}.py"
    bottom.write_text(bottom.read_text().replace("depends = ()", f'depends = ("{name_of(1500)}",)'))
    with pytest.raises(ConfigError, match="dependency cycle between recipes: ") as caught:
        Project.load(root / "configs" / "board.toml")
    cycle = str(caught.value).split(": ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1] and len(cycle) == 1502
    assert cycle[:3] == [name_of(1500), name_of(1499), name_of(1498)]
    run = run_doit(root, "list")
    assert run.returncode != 0 and "Traceback" not in run.output
    assert "dependency cycle between recipes" in run.output
