"""The no-op shortcut (fwbuild.noop): a run whose inputs are as a no-op left them loads nothing.

Each test builds a small generated board (packages without a toolchain) whose recipes say on
stderr when they are loaded: a run that prints it evaluated in full, one that does not took the
shortcut. A record is kept only for inputs older than 2 seconds (the racily-clean rule), so the
tests wait that long where they need one.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.doitrun import NOOP_SETTLE_S as SETTLE
from support.doitrun import DoitRun, doit_env, run_doit, run_until_recorded
from support.scalepkgs import make_scale_project, name_of

from fwbuild import noop

LOADED = "recipe p00000 loaded"


def _project(tmp_path: Path, n: int = 3) -> Path:
    root = make_scale_project(tmp_path / "board", n, "chain")
    recipe = root / "recipes" / f"{name_of(0)}.py"
    recipe.write_text(f"import sys\nprint({LOADED!r}, file=sys.stderr)\n" + recipe.read_text())
    return root


def _built(tmp_path: Path, n: int = 3) -> Path:
    root = _project(tmp_path, n)
    first = run_doit(root, "rootfs")
    assert first.returncode == 0 and "rootfs" in first.ran, first.output[-3000:]
    return root


def _records(root: Path) -> list[Path]:
    return sorted((root / "build" / noop.RECORDS).glob("*.json"))


def _why(root: Path) -> str:
    return "".join(p.read_text() for p in (root / "build" / noop.RECORDS).glob("*.why"))


def _recorded(root: Path, *args: str, env: dict[str, str] | None = None) -> DoitRun:
    """A full no-op that keeps its record, once the inputs are settled."""
    run, why = run_until_recorded(root, *args, env=env)
    assert run.returncode == 0 and run.ran == set(), run.output[-3000:]
    assert LOADED in run.output, "expected a full evaluation"
    assert _records(root) and not why, why
    return run


def _without_time(output: str) -> str:
    return "\n".join(
        line.partition(", 0.")[0] if line.startswith("report:") else line
        for line in output.splitlines()
        if line != LOADED
    )


def test_a_second_noop_takes_the_shortcut_and_prints_what_the_first_printed(
    tmp_path: Path,
) -> None:
    root = _built(tmp_path)
    full = _recorded(root, "rootfs")
    short = run_doit(root, "rootfs")
    assert short.returncode == 0 and LOADED not in short.output, short.output
    assert _without_time(short.output) == _without_time(full.output)
    assert short.skipped == full.skipped and "rootfs" in short.skipped
    assert "report: 0 ran, 0 failed, 17 up to date" in short.output

    # private: the record holds paths and a digest of the environment, still nobody else's
    (record,) = _records(root)
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    data = json.loads(record.read_text())
    assert data["context"]["environment"] != "" and "PATH" not in record.read_text()
    assert str(root / "recipes" / f"{name_of(2)}.py") in data["seen"]["stat"]
    assert str(root / "build" / name_of(2) / "stamps" / "install.json") in data["seen"]["stat"]

    # doit's own record is not rewritten by it (the shortcut's next check would fail)
    db = root / "build" / ".doit.db"
    before = db.stat().st_mtime_ns
    assert LOADED not in run_doit(root, "rootfs").output
    assert db.stat().st_mtime_ns == before

    # a damaged record is no record: a full evaluation, which writes a whole one again
    record.write_text('{"context": ')
    damaged = run_doit(root, "rootfs")
    assert damaged.returncode == 0 and LOADED in damaged.output, damaged.output[-3000:]
    assert damaged.ran == set() and json.loads(record.read_text())["seen"]
    assert LOADED not in run_doit(root, "rootfs").output

    # another command line is another record; an alias with no actions works the same
    board = root / "configs" / "board.toml"
    board.write_text(board.read_text() + '\n[tasks.top]\ndoc = "t"\nrun = ["install:p00002"]\n')
    _recorded(root, "top")
    alias = run_doit(root, "top")
    assert alias.returncode == 0 and LOADED not in alias.output, alias.output
    assert "report: 0 ran, 0 failed" in alias.output
    assert len(_records(root)) == 2


def test_every_kind_of_change_is_a_full_evaluation_that_sees_it(tmp_path: Path) -> None:
    root = _built(tmp_path)
    recipes = root / "recipes"

    def change_then_check(change, *, ran: set[str], env: dict[str, str] | None = None) -> None:
        _recorded(root, "rootfs", env=env)
        assert LOADED not in run_doit(root, "rootfs", env=env).output  # the shortcut is on
        change()
        after = run_doit(root, "rootfs", env=env)
        assert after.returncode == 0, after.output[-3000:]
        assert LOADED in after.output, "a changed input must be evaluated"
        assert {t for t in after.ran if t not in ("rootfs",)} >= ran, after.ran

    # a recipe's content (the same size: a version digit)
    recipe = recipes / f"{name_of(1)}.py"
    change_then_check(
        lambda: recipe.write_text(recipe.read_text().replace('version = "1"', 'version = "2"')),
        ran={f"install:{name_of(1)}", f"install:{name_of(2)}"},
    )
    # a stamp deleted: that stage runs again
    stamp = root / "build" / name_of(2) / "stamps" / "install.json"
    change_then_check(stamp.unlink, ran={f"install:{name_of(2)}"})
    # an output deleted by hand: its stage runs again
    staging = root / "build" / name_of(0) / "staging"
    assert staging.is_dir()
    change_then_check(
        lambda: subprocess.run(["rm", "-rf", str(staging)], check=True),
        ran={f"install:{name_of(0)}"},
    )
    # the board file rewritten with the same bytes
    board = root / "configs" / "board.toml"
    change_then_check(lambda: board.write_bytes(board.read_bytes()), ran=set())
    # the environment: any variable
    env = doit_env(SOMETHING_NEW="1")
    _recorded(root, "rootfs")
    assert LOADED not in run_doit(root, "rootfs").output
    assert LOADED in run_doit(root, "rootfs", env=env).output


def test_no_record_after_tasks_ran_or_fresh_inputs_or_when_switched_off(
    tmp_path: Path,
) -> None:
    root = _built(tmp_path)
    assert not _records(root) and _why(root) == "tasks ran\n"
    # a no-op that reads a file written just before it: no record (a change in the same clock
    # tick as the run's look at it would not show)
    _recorded(root, "rootfs")
    for record in _records(root):
        record.unlink()
    recipe = root / "recipes" / f"{name_of(1)}.py"
    recipe.write_bytes(recipe.read_bytes())
    again = run_doit(root, "rootfs")
    assert again.ran == set() and not _records(root)
    assert _why(root) == f"{recipe} changed just before the run\n"

    off = doit_env(**{noop.SWITCH: "1"})
    time.sleep(SETTLE)
    for _ in range(2):
        run = run_doit(root, "rootfs", env=off)
        assert run.returncode == 0 and LOADED in run.output
    assert not _records(root)


def test_a_build_waiting_for_the_lock_checks_after_it_has_it(tmp_path: Path) -> None:
    """The shortcut takes the build lock before it compares: a build running in the directory
    may change what it compares."""
    root = _built(tmp_path)
    _recorded(root, "rootfs")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(3)",
         str(root / "build" / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    # what the holder "builds" meanwhile: a stamp goes
    (root / "build" / name_of(1) / "stamps" / "install.json").unlink()
    run = run_doit(root, "rootfs")
    holder.wait()
    assert "waiting for the build" in run.output
    assert LOADED in run.output and f"install:{name_of(1)}" in run.ran, run.output


# --- the recorder in this process ----------------------------------------------------------
@pytest.mark.unit
def test_the_recorder_notes_opens_stats_listings_and_refuses_what_it_cannot_see(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "p"
    build = project / "build"
    build.mkdir(parents=True)
    old = time.time() - 10
    read, listed = project / "read.txt", project / "listed"
    read.write_text("x")
    (listed / "sub").mkdir(parents=True)
    (listed / "entry").write_text("e")
    for path in (read, listed, listed / "sub", listed / "entry", project, build):
        os.utime(path, (old, old))
    monkeypatch.setattr(noop, "_SETTLED_NS", 0)  # ctime cannot be set back: trust it here
    monkeypatch.setattr(noop, "_RECORDER", None)
    monkeypatch.delenv("FWBUILD_BUILD_DIR", raising=False)

    def report() -> dict[str, object]:
        return {"build": str(build), "paths": {}, "report": "", "lines": [], "uptodate": 0,
                "selected": [], "config": {}}  # fmt: skip

    noop.record(project / "board.toml", project)
    read.read_text()
    assert not (project / "missing").exists()
    [e.name for e in os.scandir(listed)]
    os.path.isdir(listed / "sub")
    assert noop.finish(True, report()) is None
    assert os.stat is noop._real_stat  # the real functions are back
    (record,) = (build / noop.RECORDS).glob("*.json")
    seen = json.loads(record.read_text())["seen"]
    assert seen["stat"][str(read)][3] == 1  # size
    assert seen["stat"][str(project / "missing")] == [-2]  # ENOENT: its appearing is a change
    assert str(listed) in seen["listed"] and str(listed / "entry") in seen["lstat"]
    assert len(seen["stat"][str(listed / "sub")]) == 3  # a directory stat'ed: what it is

    # a process started: what it read is unknown, so nothing is kept
    noop.record(project / "board.toml", project)
    subprocess.run(["true"], check=True)
    assert noop.finish(True, report()) == "subprocess.Popen"
    # a file changed after it was read (by someone else: the recorder looks away)
    noop.record(project / "board.toml", project)
    read.read_text()
    noop._RECORDER.active = False
    read.write_text("y")
    noop._RECORDER.active = True
    assert noop.finish(True, report()) == f"{read} changed during the run"
    # a file written: a no-op that writes is not one
    noop.record(project / "board.toml", project)
    (project / "new.txt").write_text("n")
    assert noop.finish(True, report()).startswith("wrote")


def test_an_empty_build_directory_given_is_still_adopted(tmp_path: Path) -> None:
    """The record's directory is made only in a build directory the build owns: a new, empty
    one named by FWBUILD_BUILD_DIR must still be empty when the build looks at it."""
    root = _project(tmp_path)
    empty = tmp_path / "empty-build"
    empty.mkdir()
    run = run_doit(root, "rootfs", env=doit_env(FWBUILD_BUILD_DIR=str(empty)))
    assert run.returncode == 0 and "rootfs" in run.ran, run.output[-3000:]
    assert (empty / ".fwbuild-owned").is_file() and (empty / noop.RECORDS).is_dir()


def test_a_switch_that_is_no_boolean_is_refused_by_name(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = run_doit(root, "rootfs", env=doit_env(**{noop.SWITCH: "maybe"}))
    assert run.returncode == 2 and run.ran == set(), run.output[-3000:]
    assert f"{noop.SWITCH}='maybe' is not a boolean; use 1/0" in run.output
    assert not (root / "build").exists()  # refused before anything was made
