"""The nightly CI workflow, .github/workflows/nightly.yml, and .ci/run: when the workflow runs, and
that every command they run exists (the repository's scripts, the real board's doit tasks,
installed Python modules) and is the one the README gives."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.doitrun import doit_env, run_doit

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"
# The checkout's own environment, made by scripts/setup-debian: the README's `doit` and `python3`.
VENV_PROGRAMS = {".venv/bin/doit": "doit", ".venv/bin/python": "python3"}
# What a step may run besides the repository's scripts, doit and python3: the base system of the
# runner's container (root, no sudo: the README's set-up works without it).
SYSTEM_PROGRAMS = {"apt-get", "echo", "mkdir", "cp", "test", "ls", "cat"}
DOIT_COMMANDS = {"run", "list", "info", "clean", "forget", "ignore", "dumpdb", "strace", "help"}
DOIT_VALUE_OPTIONS = {"-n", "--process", "-P", "--parallel-type", "--reporter", "-v"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@cache
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict[str, Any]]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def commands(script: str) -> list[list[str]]:
    """The simple commands of a ``run:`` script (lines, ``&&``, ``||``, ``;``, ``|``)."""
    found: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in {"&&", "||", ";", "|", "&"}:
                found += [current] if current else []
                current = []
            else:
                current.append(token)
        found += [current] if current else []
    return found


def run_commands() -> list[list[str]]:
    return [argv for step in steps() if "run" in step for argv in commands(step["run"])]


def without_env(argv: list[str]) -> list[str]:
    while argv and _ASSIGNMENT.match(argv[0]):
        argv = argv[1:]
    return argv


def in_venv(argv: list[str]) -> list[str]:
    """The README's later `doit …`/`python3 …` as its set-up paragraph says to run them."""
    venv = {short: full for full, short in VENV_PROGRAMS.items()}
    at = len(argv) - len(without_env(argv))
    if at < len(argv) and argv[at] in venv:
        return [*argv[:at], venv[argv[at]], *argv[at + 1 :]]
    return argv


def readme_first_block_lines() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md lost its first sh block"
    return block[1].splitlines()


def readme_first_block() -> list[list[str]]:
    return [argv for line in readme_first_block_lines() for argv in commands(line.split("#", 1)[0])]


def real_board_tasks(tmp: str) -> frozenset[str]:
    """What ``doit list --all`` shows for the real board (it needs no sources)."""
    env = doit_env(
        FWBUILD_BUILD_DIR=f"{tmp}/build",
        FWBUILD_DL_DIR=f"{tmp}/dl",
        FWBUILD_OUTPUT_DIR=f"{tmp}/output",
        FWBUILD_PKI_DIR=f"{tmp}/pki",
        FWBUILD_SECRETS=f"{tmp}/secrets/secrets.toml",  # its directory is its own
        ROOTFS_DIR=f"{tmp}/rootfs",
    )
    listing = run_doit(REPO, "list", "--all", env=env)
    assert listing.returncode == 0, listing.output
    return frozenset(line.split()[0] for line in listing.output.splitlines() if line.strip())


@pytest.mark.unit
def test_runs_nightly_and_on_demand() -> None:
    triggers = workflow().get("on", workflow().get(True))  # YAML 1.1 reads a bare `on` as True
    assert "workflow_dispatch" in triggers
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons
    for cron in crons:  # once a day, at a fixed time
        minute, hour, *days = cron.split()
        assert minute.isdigit() and hour.isdigit() and days == ["*", "*", "*"], cron


def test_every_command_exists(tmp_path: Path) -> None:
    tasks = real_board_tasks(str(tmp_path))
    assert {"rootfs", "source", "legal-info"} <= tasks
    checked = 0
    for raw in run_commands():
        argv = without_env(raw)
        if argv[:1] == ["sudo"]:
            argv = without_env(argv[1:])
        program, args = argv[0], argv[1:]
        if program in VENV_PROGRAMS:  # made by the set-up script, which a step runs first
            assert ".venv" in (REPO / "scripts" / "setup-debian").read_text()
            program = VENV_PROGRAMS[program]
            argv = [program, *args]
        if "/" in program:  # the repository's own scripts
            path = REPO / program
            assert path.is_file() and os.access(path, os.X_OK), f"{program} is not in the repo"
        elif program == "doit" or argv[:3] == ["python3", "-m", "doit"]:
            args = args[2:] if program == "python3" else args
            if args[:1] and args[0] in DOIT_COMMANDS:
                args = args[1:]
            names, skip = [], False
            for arg in args:
                if skip or arg.startswith("-"):
                    skip = not skip and arg in DOIT_VALUE_OPTIONS
                    continue
                names.append(arg)
            assert names, f"`{shlex.join(raw)}` names no task"
            for name in names:
                assert name in tasks, f"`{shlex.join(raw)}`: the real board has no task {name}"
        elif program == "python3":
            assert args[:1] == ["-m"], f"`{shlex.join(raw)}`: run modules with python3 -m"
            assert importlib.util.find_spec(args[1]) is not None, f"no module {args[1]}"
        else:
            assert program in SYSTEM_PROGRAMS, f"`{shlex.join(raw)}`: unknown program {program}"
        checked += 1
    assert checked >= 5


@pytest.mark.unit
def test_readme_commands_are_the_ones_run() -> None:
    readme = (REPO / "README.md").read_text()
    wanted = {shlex.join(argv) for argv in readme_first_block()}
    # root or a user with sudo: the script itself uses sudo only for apt, never for the rest
    assert {"scripts/setup-debian", ".venv/bin/doit rootfs", ".venv/bin/python -m pytest"} <= wanted
    offline = next(line for line in readme.splitlines() if line.startswith("Offline builds:"))
    later = re.findall(r"`([^`]+)`", offline)
    assert {"doit source", "FWBUILD_OFFLINE=1 doit rootfs"} <= set(later)
    wanted |= {shlex.join(in_venv(shlex.split(command))) for command in later}
    ran = run_commands()
    forms = {shlex.join(a) for a in ran} | {shlex.join(without_env(a)) for a in ran}
    assert wanted <= forms, sorted(wanted - forms)
    assert not any(a[:1] == ["sudo"] for a in ran)  # the job runs as root, with no sudo
    # in that order: set up, download, build offline (the README's offline recipe)
    order = [shlex.join(a) for a in ran]
    assert order.index("scripts/setup-debian") < order.index(".venv/bin/doit source")
    assert order.index(".venv/bin/doit source") < order.index(
        "FWBUILD_OFFLINE=1 .venv/bin/doit rootfs"
    )
    assert order.index("FWBUILD_OFFLINE=1 .venv/bin/doit rootfs") < order.index(
        "FWBUILD_OFFLINE=1 .venv/bin/doit legal-info"
    )  # the rootfs stage replaces the output directory


@pytest.mark.unit
def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run is the README's second line, word for word, and nothing else runs after it."""
    tests_line = next(
        line for line in readme_first_block_lines() if "pytest" in line.split("#", 1)[0]
    )
    wanted = commands(tests_line.split("#", 1)[0])
    script = (REPO / ".ci" / "run").read_text()
    lines = [
        line
        for line in script.splitlines()[1:]
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[:2] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."'], lines
    assert [c for line in lines[2:] for c in commands(line)] == wanted
    assert os.access(REPO / ".ci" / "run", os.X_OK)


@pytest.mark.unit
def test_download_cache_and_artifacts() -> None:
    board = tomllib.loads((REPO / "configs" / "siso.toml").read_text())
    downloads = board["paths"]["downloads"]
    caches = [s for s in steps() if str(s.get("uses", "")).startswith("actions/cache@")]
    caches = [s for s in caches if s["with"]["path"] not in (build_cache_dir(), ZIG_CACHE)]
    assert len(caches) == 1
    cache_with = caches[0]["with"]
    assert cache_with["path"] == downloads  # the board's download directory
    key = cache_with["key"]
    assert "hashFiles(" in key and "recipes/*.py" in key and "configs/pins.lock" in key
    uploads = [s for s in steps() if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    upload = uploads[0]
    assert "always()" in upload.get("if", "")  # a failed build's logs and report too
    paths = upload["with"]["path"].split()
    output = board["paths"]["output"]
    assert f"{output}/" in paths and "build/report.json" in paths
    assert all(re.search(r"@v\d+$", s["uses"]) for s in steps() if "uses" in s)


def build_cache_dir() -> str:
    return str(workflow()["jobs"]["firmware"]["env"]["FWBUILD_CACHE_DIR"])


ZIG_CACHE = "~/.cache/zig"  # zig's global cache when ZIG_GLOBAL_CACHE_DIR is not set


def test_zigs_cache_is_kept_between_nights() -> None:
    """A fresh runner restores zig's libc cache before the first build step: a night whose
    packages all come from the build cache must not spend minutes building zig's libc."""
    env = workflow()["jobs"]["firmware"].get("env", {})
    assert "ZIG_GLOBAL_CACHE_DIR" not in env  # else the cache below is not the one zig uses
    caches = [s for s in steps() if str(s.get("uses", "")).startswith("actions/cache@")]
    kept = [s for s in caches if s["with"]["path"] == ZIG_CACHE]
    assert len(kept) == 1
    assert kept[0]["with"]["key"].startswith(kept[0]["with"]["restore-keys"])
    names = [s.get("name") for s in steps()]
    build = next(i for i, s in enumerate(steps()) if "doit rootfs" in s.get("run", ""))
    assert names.index(kept[0]["name"]) < build


def test_build_cache_is_kept_between_nights() -> None:
    """The shared build cache's directory (FWBUILD_CACHE_DIR) is restored before the build and
    keyed by everything that defines one, falling back to the last night's."""
    caches = [s for s in steps() if str(s.get("uses", "")).startswith("actions/cache@")]
    kept = [s for s in caches if s["with"]["path"] == build_cache_dir()]
    assert len(kept) == 1
    key = kept[0]["with"]["key"]
    for inputs in ("recipes/", "patches/", "configs/", "fwbuild/"):
        assert inputs in key, key
    assert key.startswith(kept[0]["with"]["restore-keys"])
    names = [s.get("name") for s in steps()]
    build = next(i for i, s in enumerate(steps()) if "doit rootfs" in s.get("run", ""))
    assert names.index(kept[0]["name"]) < build


@pytest.mark.unit
def test_draws_and_uploads_the_pictures() -> None:
    """The three pictures (fwbuild.graphs) are drawn after the build, and uploaded with it."""
    ran = [shlex.join(a) for a in run_commands()]
    drawing = [without_env(a) for a in run_commands() if "graph-build" in a]
    assert len(drawing) == 1
    assert {"graph-depends", "graph-build", "graph-size"} <= set(drawing[0])
    drawn = next(i for i, command in enumerate(ran) if "graph-build" in command)
    # right after the build: graph-build draws the last run's report, and any run between (the
    # licence bundle's) would be that last run
    assert ran.index("FWBUILD_OFFLINE=1 .venv/bin/doit rootfs") + 1 == drawn
    step = next(s for s in steps() if "graph-build" in s.get("run", ""))
    assert "!cancelled()" in step.get("if", "")  # a failed build's timeline too
    uploads = [s for s in steps() if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert "build/graphs/" in uploads[0]["with"]["path"].split()


@pytest.mark.unit
def test_checks_the_mirrors_before_the_build() -> None:
    """`doit source-check` runs online, before the download and the build, and its failure
    fails the night (no continue-on-error, no `if:` that would run it regardless)."""
    ran = [shlex.join(a) for a in run_commands()]
    assert ".venv/bin/doit source-check" in ran
    assert ran.index(".venv/bin/doit source-check") < ran.index(".venv/bin/doit source")
    assert ran.index(".venv/bin/doit source-check") < ran.index(
        "FWBUILD_OFFLINE=1 .venv/bin/doit rootfs"
    )
    step = next(s for s in steps() if "source-check" in s.get("run", ""))
    assert not step.get("continue-on-error") and "if" not in step
    assert "FWBUILD_OFFLINE" not in step["run"]


@pytest.mark.unit
def test_proves_the_firmware_it_built() -> None:
    """After the build, the README's tests run with the real-source tests pointed at that very
    build (tests/support/real.py); the VMs' consoles and captures are uploaded with it."""
    board = tomllib.loads((REPO / "configs" / "siso.toml").read_text())
    ran = [shlex.join(a) for a in run_commands()]
    tests = next(s for s in steps() if s.get("run", "").strip() == ".venv/bin/python -m pytest")
    assert ran.index("FWBUILD_OFFLINE=1 .venv/bin/doit rootfs") < ran.index(
        ".venv/bin/python -m pytest"
    )
    env = tests.get("env", {})
    assert env.get("FWBUILD_REAL_BUILD_DIR") == board["paths"]["build"]
    assert env.get("FWBUILD_REAL_FIRMWARE") == board["paths"]["output"]
    logs = env.get("FWBUILD_REAL_LOG_DIR")
    assert logs
    uploads = [s for s in steps() if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert f"{logs}/" in uploads[0]["with"]["path"].split()
    # the variables mean something to the tests, and the firmware check is one of them
    real = (REPO / "tests" / "support" / "real.py").read_text()
    assert "FWBUILD_REAL_BUILD_DIR" in real and "FWBUILD_REAL_LOG_DIR" in real
    vpn = (REPO / "tests" / "test_real_vpn.py").read_text()
    assert 'os.environ.get("FWBUILD_REAL_FIRMWARE")' in vpn
    assert "def test_images_carry_the_firmware_that_was_built" in vpn
