"""Rebuild tracking: change one kind of input, exactly its dependent stages rerun.

The matrix runs in order on one project (each step starts from the state the previous left);
every step states the full set of tasks that must run, so a stage that reruns needlessly fails
the test as surely as one that does not rerun.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.doitrun import doit_env, run_doit, run_until_recorded
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

ALL = ("fetch", "patch", "configure", "build", "install")


def tasks(package: str, *stages: str) -> set[str]:
    return {f"{s}:{package}" for s in stages}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist
) -> Iterator[Path]:
    with FaultServer(mirror_root) as srv:
        proj = make_project(tmp_path_factory.mktemp("rebuild"), dist, srv.url)
        # hello takes make variables from a helper module, imported only when make_args runs
        (proj / "recipes" / "_make_vars.py").write_text("def extra():\n    return []\n")
        edit(
            _recipe(proj, "hello"),
            'return ["GATE="]',
            'from _make_vars import extra\n\n        return ["GATE=", *extra()]',
        )
        first = run_doit(proj, "rootfs")
        assert first.returncode == 0, first.output
        yield proj


def _recipe(p: Path, name: str) -> Path:
    return p / "recipes" / f"{name}.py"


# (description, change, tasks that must run)
MATRIX: list[tuple[str, Callable[[Path], None], set[str]]] = [
    ("nothing changed", lambda p: None, set()),
    (
        "an overlay file",
        lambda p: (p / "configs/rootfs/etc/hello.conf").write_text("greeting = XP\n"),
        {"rootfs"},
    ),
    (
        "an overlay file's mode",
        lambda p: (p / "configs/rootfs/etc/hello.conf").chmod(0o600),
        {"rootfs"},
    ),
    (
        "the permissions table",
        lambda p: edit(p / "configs/permissions.txt", "/var/run d 0755", "/var/run d 0700"),
        {"rootfs"},
    ),
    (
        "our own patch",
        lambda p: edit(
            p / "patches/hello/1.0/0001-patched-greeting.patch", "hello: patched", "hello: ours"
        ),
        tasks("hello", "patch", "configure", "build", "install") | {"rootfs"},
    ),
    (
        "a recipe's build settings",
        lambda p: edit(_recipe(p, "hello"), 'return ["GATE=', 'return ["V=1", "GATE='),
        tasks("hello", "configure", "build", "install") | {"rootfs"},
    ),
    (
        "a helper module the recipe imports inside a method",
        lambda p: edit(p / "recipes/_make_vars.py", "return []", 'return ["V=1"]'),
        tasks("hello", "configure", "build", "install") | {"rootfs"},
    ),
    (
        "a variant (drops the downloaded patch)",
        lambda p: edit(p / "configs/board.toml", "extra = true", "extra = false"),
        tasks("hello", *ALL) | {"rootfs"},
    ),
    (
        "a dependency's recipe",
        lambda p: edit(_recipe(p, "libgreet"), 'license = "MIT"', 'license = "MIT"  # edited'),
        tasks("libgreet", "configure", "build", "install")
        | tasks("hello", "configure", "build", "install")
        | {"rootfs"},
    ),
    (
        "the toolchain's flags",
        lambda p: edit(p / "configs/board.toml", 'cflags = ["-O2"]', 'cflags = ["-O1"]'),
        tasks("libgreet", "configure", "build", "install")
        | tasks("hello", "configure", "build", "install")
        | {"toolchain", "rootfs"},
    ),
    ("nothing changed, again", lambda p: None, set()),
]


def _with_a_noop_record(project: Path) -> None:
    """A no-op record kept (fwbuild.noop): the change that follows then meets the shortcut,
    which must see it."""
    run, why = run_until_recorded(project, "rootfs")
    assert run.returncode == 0 and run.ran == set(), run.output[-3000:]
    assert not why and list((project / "build" / ".noop").glob("*.json")), why


def test_rebuild_matrix(project: Path) -> None:
    for description, change, expected in MATRIX:
        _with_a_noop_record(project)
        change(project)
        run = run_doit(project, "rootfs")
        assert run.returncode == 0, f"{description}:\n{run.output}"
        assert run.ran == expected, f"after changing {description}: ran {sorted(run.ran)}"
    # the last real change still produced a working program
    hello = project / "build" / "rootfs" / "usr" / "bin" / "hello"
    out = subprocess.run(["qemu-i386", "-cpu", "pentium", str(hello)], capture_output=True)
    assert out.stdout.decode().splitlines() == ["Hello, SISO, from libgreet 1.0", "hello: ours"]
    assert (project / "build/rootfs/etc/hello.conf").read_text() == "greeting = XP\n"


def test_sigkill_mid_build_resumes_without_redoing_or_trusting(
    tmp_path: Path, mirror_root: Path, dist: Dist
) -> None:
    gate = tmp_path / "gate"
    gate.write_text("hold hello's link step until this file is gone\n")
    with FaultServer(mirror_root) as srv:
        proj = make_project(tmp_path / "proj", dist, srv.url, gate=gate)
        proc = subprocess.Popen(
            [sys.executable, "-m", "doit", "-n", "2", "rootfs"],
            cwd=proj,
            env=doit_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        reached = Path(f"{gate}.reached")
        deadline = time.monotonic() + 300
        while not reached.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "hello's build never reached the gate"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # doit and every make/cc below it, mid-stage
        proc.wait()
        gate.unlink()
        resumed = run_doit(proj, "rootfs")
    assert resumed.returncode == 0, resumed.output
    # finished work is kept: libgreet entirely, hello up to configure
    assert not any(t.endswith(":libgreet") for t in resumed.ran), resumed.ran
    assert resumed.stages("hello") == {"build", "install"}, resumed.ran
    build_log = (proj / "build/hello/logs/build.log").read_text()
    assert re.search(r"-o hello", build_log)


def test_failed_stage_is_not_trusted(tmp_path: Path, mirror_root: Path, dist: Dist) -> None:
    with FaultServer(mirror_root) as srv:
        proj = make_project(tmp_path / "proj", dist, srv.url)
        edit(_recipe(proj, "hello"), 'return ["GATE=', 'return ["CC=false", "GATE=')
        failed = run_doit(proj, "rootfs")
        assert failed.returncode != 0
        assert "build:hello" in failed.output and "build.log" in failed.output
        assert not (proj / "build/hello/stamps/build.json").exists()
        edit(_recipe(proj, "hello"), '"CC=false", ', "")
        fixed = run_doit(proj, "rootfs")
    assert fixed.returncode == 0, fixed.output
    assert fixed.stages("hello") == {"configure", "build", "install"}
    assert fixed.stages("libgreet") == set()
