"""The engine's structure: one table of stages with a place for hooks.

(Later sections of this file check the import graph.)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.genpkgs import Dist, add_own_code_package, make_project

from fwbuild.project import Project
from fwbuild.stages import BY_NAME, STAGES, TABLE, Stage
from fwbuild.stamps import read_stamp, stamp_matches
from fwbuild.trees import check_project


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
    check_project(loaded)  # adopts the new build directory, as doit_config does
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
