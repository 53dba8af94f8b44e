"""The engine's structure: one table of stages with a place for hooks, an import graph without
cycles, and an engine that imports nothing of the VPN board it builds.

The import graph is read from the source (``ast``), every import counted: at the top of a module
or inside a function (a lazy import is a dependency all the same), except under
``if TYPE_CHECKING:`` (never run) and ``if __name__ == "__main__":`` (the program itself, which
nothing imports).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import shutil
from pathlib import Path

import pytest
from support.genpkgs import Dist, add_own_code_package, make_project

import fwbuild
from fwbuild.project import Project
from fwbuild.stages import BY_NAME, STAGES, TABLE, Stage
from fwbuild.stamps import read_stamp, stamp_matches
from fwbuild.trees import guard_for


class Recorder:
    """A stage hook that records its calls; ``produce`` makes ``before`` do the work itself."""

    def __init__(self, *, produce: bool = False, fail_after: bool = False) -> None:
        self.calls: list[str] = []
        self.produce, self.fail_after = produce, fail_after

    def before(self, project: Project, stage: Stage, name: str) -> bool:
        self.calls.append(f"before {stage.name}:{name}")
        # the stamps were removed before any hook runs (crash safety)
        assert not project.stamp_path(name, stage.name).exists()
        if self.produce:
            (project.srcdir(name)).mkdir(parents=True)
        return self.produce

    def after(self, project: Project, stage: Stage, name: str) -> None:
        self.calls.append(f"after {stage.name}:{name}")
        if self.fail_after:
            raise RuntimeError("after hook failed")


@pytest.fixture
def project(tmp_path: Path, dist: Dist) -> Project:
    root = make_project(tmp_path / "p", dist, "http://127.0.0.1:9")  # nothing is downloaded
    add_own_code_package(root)
    loaded = Project.load(root / "configs" / "board.toml")
    guard_for(loaded)  # adopts the new build directory, as doit_config does
    return loaded


def test_the_table_is_the_one_list_of_stages() -> None:
    assert STAGES == ("fetch", "patch", "configure", "build", "install")
    assert [s.name for s in TABLE] == list(STAGES)
    assert [s.previous.name if s.previous else None for s in TABLE] == [None, *STAGES[:-1]]
    assert [s.covers_deps for s in TABLE] == [False, False, True, True, True]
    assert all(BY_NAME[s.name] is s for s in TABLE)


def test_stage_inputs_chain_through_the_previous_key(project: Project) -> None:
    inputs = project.stage_inputs("notes", "patch")
    assert inputs["fetch"] == project.key("notes", "fetch")
    assert inputs["stage"] == "patch"
    deps = BY_NAME["configure"].task_deps(project, "hello")
    assert deps == ["patch:hello", "install:libgreet", "toolchain"]


def test_hooks_run_around_the_work_and_before_the_stamp(project: Project) -> None:
    BY_NAME["fetch"].run(project, "notes")
    hook = Recorder()
    patch = dataclasses.replace(BY_NAME["patch"], hooks=(hook,))
    patch.run(project, "notes")
    assert hook.calls == ["before patch:notes", "after patch:notes"]
    assert (project.srcdir("notes") / "NOTES").read_text() == "our own notes\n"
    assert patch.done(project, "notes")
    stamp = read_stamp(project.stamp_path("notes", "patch"))
    assert stamp is not None and stamp["inputs"] == project.stage_inputs("notes", "patch")


def test_a_hook_that_produces_the_outputs_skips_the_work(project: Project) -> None:
    BY_NAME["fetch"].run(project, "notes")
    hook = Recorder(produce=True)
    dataclasses.replace(BY_NAME["patch"], hooks=(hook,)).run(project, "notes")
    assert hook.calls == ["before patch:notes", "after patch:notes"]
    assert not (project.srcdir("notes") / "NOTES").exists()  # the work did not run
    assert stamp_matches(project.stamp_path("notes", "patch"), project.key("notes", "patch"))


def test_a_failing_hook_leaves_no_stamp(project: Project) -> None:
    BY_NAME["fetch"].run(project, "notes")
    BY_NAME["patch"].run(project, "notes")
    assert BY_NAME["patch"].done(project, "notes")
    failing = dataclasses.replace(BY_NAME["patch"], hooks=(Recorder(fail_after=True),))
    with pytest.raises(RuntimeError, match="after hook failed"):
        failing.run(project, "notes")
    assert not project.stamp_path("notes", "patch").exists()
    assert not BY_NAME["patch"].done(project, "notes")


# --- the import graph ------------------------------------------------------------------------
ENGINE = Path(fwbuild.__file__).parent


def _skipped(node: ast.If) -> bool:
    test = ast.unparse(node.test)
    return "TYPE_CHECKING" in test or test.replace("'", '"') == '__name__ == "__main__"'


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _skipped(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def imported_names(file: Path) -> list[str]:
    """Every module name ``file`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    names: list[str] = []
    for node in _imports(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
            continue
        base = node.module or ""
        if node.level:  # relative: inside the package
            base = "fwbuild" + (f".{base}" if base else "")
        names.append(base)
        names += [f"{base}.{a.name}" for a in node.names]
    return names


def engine_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the engine package at ``root`` -> the engine modules it imports."""
    modules = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for module in sorted(modules):
        deps = {
            parts[1]
            for name in imported_names(root / f"{module}.py")
            if (parts := name.split("."))[0] == "fwbuild" and len(parts) > 1
        }
        graph[module] = {d for d in deps if d in modules and d != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (``[a, b, …, a]``), or None: depth first, without recursion."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif step in on_path:
                return [*path[path.index(step) :], step]
            elif step not in done:
                path.append(step)
                on_path.add(step)
                stack.append(iter(sorted(graph[step])))
    return None


def test_the_engine_import_graph_has_no_cycles() -> None:
    graph = engine_graph(ENGINE)
    assert len(graph) > 30  # the walk saw the engine, and its edges:
    assert {"stages", "stamps", "fsutil"} <= graph["project"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in fwbuild/: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle_made_on_purpose(tmp_path: Path) -> None:
    copy = tmp_path / "fwbuild"
    shutil.copytree(ENGINE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert find_cycle(engine_graph(copy)) is None
    fsutil = copy / "fsutil.py"
    base = fsutil.read_text()
    # under TYPE_CHECKING (never run): still no cycle
    fsutil.write_text(base + "\nif TYPE_CHECKING:\n    from fwbuild.tasks import make_tasks\n")
    assert find_cycle(engine_graph(copy)) is None
    # a lazy import deep down (fsutil is below everything, tasks above everything) closes one
    fsutil.write_text(base + "\n\ndef late():\n    from fwbuild.tasks import make_tasks\n")
    cycle = find_cycle(engine_graph(copy))
    assert cycle is not None and {"fsutil", "tasks"} <= set(cycle)
    # and so does a relative one at the top of a module
    fsutil.write_text("from . import report\n" + base)
    cycle = find_cycle(engine_graph(copy))
    assert cycle is not None and {"fsutil", "report"} <= set(cycle)


# --- the engine is generic -------------------------------------------------------------------
VPN_WORDS = ("pki", "vpn", "ppp", "l2tp", "ipsec", "racoon", "chap", "x509", "siso")


def test_the_engine_imports_nothing_vpn_specific() -> None:
    """fwbuild/ builds any board: no module of it is about the VPN, none imports one, and none
    imports the recipes (package and board knowledge lives there, beside configs/)."""
    files = sorted(ENGINE.glob("*.py"))
    assert len(files) > 30
    wrong = [f.name for f in files if any(w in f.stem.lower() for w in VPN_WORDS)]
    for file in files:
        for name in imported_names(file):
            parts = name.lower().split(".")
            # recipes' helper modules are "_name" (the recipes directory is on sys.path)
            helper = parts[0].startswith("_") and not parts[0].startswith("__")
            recipes = parts[0] in {"recipes", "fwbuild_recipes"} or helper
            if recipes or any(w in part for part in parts for w in VPN_WORDS):
                wrong.append(f"{file.name} imports {name}")
    assert not wrong, "VPN or recipe knowledge in the generic engine: " + "; ".join(wrong)


# --- no registries, data not text --------------------------------------------------------------
def test_two_projects_in_one_process_keep_their_own_tasks_and_reporter(
    tmp_path: Path, dist: Dist
) -> None:
    """Nothing global: the tasks' actions carry their project, and each reporter class is bound
    to its own project (a class variable set per call made the last one win)."""
    from fwbuild.report import build_reporter
    from fwbuild.tasks import make_tasks

    projects = [
        Project.load(
            make_project(tmp_path / n, dist, "http://127.0.0.1:9") / "configs" / "board.toml"
        )
        for n in ("one", "two")
    ]
    for project in projects:
        groups = make_tasks(project)
        tasks = list(groups["install"].create_doit_tasks())
        hello = next(t for t in tasks if t.get("name") == "hello")
        _, args = hello["actions"][0]
        assert args[0] is project
    reporters = [build_reporter(p) for p in projects]
    assert reporters[0] is not reporters[1]
    made = [r(io.StringIO(), {}) for r in reporters]  # their build locks are taken here
    assert all(m.project is p for m, p in zip(made, projects, strict=True))


def test_a_failures_log_travels_as_data(tmp_path: Path) -> None:
    """The report names a failed step's log from the failure itself, not from its text."""
    from doit.exceptions import TaskFailed
    from doit.task import Task

    from fwbuild.actions import guarded
    from fwbuild.errors import StepError
    from fwbuild.report import BuildReporter

    log = tmp_path / "logs" / "build.log"

    class Paths:
        build = rootfs = output = tmp_path

    class Board:
        paths = Paths()

    class FakeProject:  # guarded() reads only the board's paths
        board = Board()

    def fail() -> None:
        raise StepError("`make` failed with exit code 2 (the message says no log)", log=log)

    failed = guarded(FakeProject(), fail)  # type: ignore[arg-type]
    assert isinstance(failed, TaskFailed) and failed.log == str(log)
    assert "--- full log" not in str(failed.message)

    task = Task("build:hello", ["true"])
    reporter = BuildReporter(io.StringIO(), {})  # no project: only the console and the records
    reporter.execute_task(task)
    reporter.add_failure(task, failed)
    record = reporter.records["build:hello"]
    assert record.result == "failed" and record.log == str(log)
