"""The build report (fwbuild.report): a table at the end of each build, ``build/report.json``,
why each stage ran, and a failed build's last lines naming the package and its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

from fwbuild.report import NO_STAMP

OWN_PATCH = "patches/hello/1.0/0001-patched-greeting.patch"


@pytest.fixture
def project(tmp_path: Path, server: FaultServer, dist: Dist) -> Path:
    return make_project(tmp_path / "proj", dist, server.url)


def report(project: Path) -> dict[str, Any]:
    return json.loads((project / "build" / "report.json").read_text())


def tasks(project: Path) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in report(project)["tasks"]}


def row(output: str, task: str) -> str:
    return next(line for line in output.splitlines() if line.split()[:1] == [task])


def merged(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """doit with stdout and stderr in one stream, as a CI log shows them."""
    return subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=project,
        env=doit_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=600,
    )


def test_why_each_stage_ran(project: Path) -> None:
    first = run_doit(project, "patch:hello")
    assert first.returncode == 0, first.output
    done = tasks(project)
    assert done["patch:hello"]["result"] == "ran" and done["patch:hello"]["why"] == [NO_STAMP]
    assert done["fetch:hello"]["result"] == "ran"
    assert "  task " in first.output and NO_STAMP in row(first.output, "patch:hello")

    # our own patch changes: its patch stage runs again, and says so
    own = project / OWN_PATCH
    own.write_text("A reworded description.\n" + own.read_text())
    second = run_doit(project, "patch:hello")
    assert second.ran == {"patch:hello"}, second.output
    done = tasks(project)
    assert done["patch:hello"]["why"] == ["own patches: 0001-patched-greeting.patch"]
    assert done["fetch:hello"]["result"] == "up-to-date"  # a cache hit, with no time of its own
    assert done["fetch:hello"]["seconds"] is None and done["fetch:hello"]["why"] == []
    line = row(second.output, "patch:hello")
    assert " ran " in line and "own patches: 0001-patched-greeting.patch" in line

    # a variant drops the downloaded patch: the fetch stage and then the patch stage run
    board = project / "configs" / "board.toml"
    board.write_text(board.read_text().replace("extra = true", "extra = false"))
    third = run_doit(project, "patch:hello")
    assert third.ran == {"fetch:hello", "patch:hello"}, third.output
    done = tasks(project)
    assert done["fetch:hello"]["why"] == ["downloads: hello-1.0-extra.patch.gz"]
    assert done["patch:hello"]["why"] == [
        "downloaded patches: hello-1.0-extra.patch.gz",
        "fetch:hello changed",
    ]


def test_report_json_after_a_build(project: Path) -> None:
    run = run_doit(project, "rootfs")
    assert run.returncode == 0, run.output
    data = report(project)
    assert data["result"] == "ok" and data["board"] == "testboard"
    assert data["counts"] == {"ran": len(run.ran), "failed": 0, "up-to-date": 0}
    stages = {f"{s}:{p}" for s in ("fetch", "patch", "configure", "build", "install")
              for p in ("hello", "libgreet")}  # fmt: skip
    assert stages | {"rootfs", "toolchain"} <= {t["task"] for t in data["tasks"]}
    for task in data["tasks"]:
        assert task["result"] == "ran" and task["started"].endswith("Z")
        assert task["seconds"] >= 0 and task["offset"] >= 0
    seconds = [t["seconds"] for t in data["tasks"]]
    assert seconds == sorted(seconds, reverse=True)  # slowest first
    assert tasks(project)["rootfs"]["why"] == [NO_STAMP]
    # the table: every task that ran, slowest first, before anything else of the report
    table = [line.split()[0] for line in run.output.splitlines() if line.startswith("  ")]
    assert table[0] == "task" and table[1:] == [t["task"] for t in data["tasks"]]

    # nothing to do: one line, every task a cache hit, and the build's report kept as it was
    # (a no-op rewriting thousands of records cost more than the no-op itself; issue 15)
    before = (project / "build" / "report.json").read_bytes()
    again = run_doit(project, "rootfs")
    assert again.ran == set()
    assert "report: 0 ran, 0 failed, " in again.output and "  task " not in again.output
    assert "nothing ran: " in again.output
    assert (project / "build" / "report.json").read_bytes() == before

    # the list of tasks is not a build: no report there
    listing = run_doit(project, "list")
    assert listing.returncode == 0 and "report" not in listing.output


@pytest.mark.parametrize("jobs", [1, 2])
def test_failed_build_ends_naming_the_package_and_its_log(project: Path, jobs: int) -> None:
    recipe = project / "recipes" / "hello.py"
    recipe.write_text(recipe.read_text().replace('return ["GATE=', 'return ["CC=false", "GATE='))
    run = merged(project, "-n", str(jobs), "rootfs")
    assert run.returncode != 0
    log = project / "build" / "hello" / "logs" / "build.log"
    assert log.is_file()
    last = run.stdout.rstrip().splitlines()[-2:]
    assert last[-1] == f"FAILED build:hello (package hello); log: {log}", run.stdout
    assert last[0].startswith("build:hello failed: hello: `make") and "exit code" in last[0]
    data = report(project)
    assert data["result"] == "failed" and data["counts"]["failed"] == 1
    failed = tasks(project)["build:hello"]
    assert failed["result"] == "failed" and failed["log"] == str(log)
    assert "install:hello" not in tasks(project)  # never reached


def test_a_failed_download_names_the_file(project: Path, server: FaultServer) -> None:
    for mirror in ("primary", "upstream", "backup"):
        server.fault(f"/{mirror}/libgreet-1.0.tar.gz", "404")
    run = merged(project, "fetch:libgreet")
    assert run.returncode != 0
    last = run.stdout.rstrip().splitlines()[-1]
    assert last.startswith("FAILED fetch:libgreet (package libgreet): libgreet: ")
    assert "libgreet-1.0.tar.gz" in last
