"""Directories the build cannot work in: a build path with spaces (the packages' make-based build
systems cannot cope), a read-only or full build or output directory, and a disk that fills up
during a step. Each is a message naming the directory and the setting that moves it, before
anything is built where possible, and never a Python traceback.

A read-only or full file system for root needs a real one: a tmpfs mounted read-only, or one
filled up (root ignores permission bits, and only a mount makes a write fail for root). Where
nothing can be mounted the tests say so and are skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer
from support.mounts import tmpfs

from fwbuild.errors import BuildError, StepError
from fwbuild.recipe import Package
from fwbuild.steps import Context, clean_env
from fwbuild.toolchain import NoToolchain


def fill(directory: Path) -> None:
    """Write until the file system says it is full."""
    with (directory / "filler").open("wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:  # permission bits stop everyone but root
        where = tmp_path / "readonly"
        where.mkdir()
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
        return
    with tmpfs(tmp_path / "readonly", "ro,size=1m") as where:
        yield where


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "full", "size=512k") as where:
        fill(where)
        yield where


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output


def test_build_path_with_spaces_is_refused_up_front_and_the_advice_works(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "my projects" / "proj", dist, server.url)
    refused = run_doit(proj, "rootfs")
    assert refused.returncode != 0
    no_traceback(refused.output)
    assert "whitespace" in refused.output and str(proj / "build") in refused.output
    assert "make-based" in refused.output and "FWBUILD_BUILD_DIR" in refused.output
    assert not (proj / "build").exists() and not refused.ran  # nothing was started

    # what the message says to do: the project stays where it is, its build moves
    moved = run_doit(proj, "rootfs", env=doit_env(FWBUILD_BUILD_DIR=str(tmp_path / "build")))
    assert moved.returncode == 0, moved.output
    assert (proj / "output" / "rootfs.tar").is_file()


@pytest.mark.parametrize(
    ("setting", "what"),
    [("FWBUILD_BUILD_DIR", "build directory"), ("FWBUILD_OUTPUT_DIR", "output directory")],
)
def test_read_only_directory_is_refused_up_front(
    tmp_path: Path, server: FaultServer, dist: Dist, readonly_dir: Path, setting: str, what: str
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    target = readonly_dir / "tree"
    run = run_doit(proj, "rootfs", env=doit_env(**{setting: str(target)}))
    assert run.returncode != 0
    no_traceback(run.output)
    assert f"the {what} {target} cannot be written" in run.output
    assert setting in run.output and not run.ran


def test_full_build_directory_is_refused_up_front(
    tmp_path: Path, server: FaultServer, dist: Dist, full_dir: Path
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    run = run_doit(proj, "rootfs", env=doit_env(FWBUILD_BUILD_DIR=str(full_dir / "build")))
    assert run.returncode != 0
    no_traceback(run.output)
    assert f"the file system holding {full_dir} is full" in run.output
    assert "FWBUILD_BUILD_DIR" in run.output and not run.ran


class Demo(Package):
    name = "demo"
    version = "1.0"


def context(srcdir: Path, log: Path) -> Context:
    srcdir.mkdir(parents=True, exist_ok=True)
    return Context(
        package=Demo(board=None, recipe_file=srcdir / "demo.py"),  # type: ignore[arg-type]
        srcdir=srcdir,
        staging=srcdir / "staging",
        deps_staging={},
        toolchain=NoToolchain(),
        build_triplet="x86_64-pc-linux-gnu",
        jobs=1,
        log_path=log,
        base_env=clean_env({}),
    )


@pytest.mark.unit
def test_log_on_a_full_disk_is_a_build_error_naming_it(tmp_path: Path, full_dir: Path) -> None:
    ctx = context(tmp_path / "src", full_dir / "logs" / "build.log")
    (full_dir / "logs").mkdir(exist_ok=True)  # a directory still fits in a full tmpfs
    with pytest.raises(BuildError) as err:
        ctx.run("true")
    message = str(err.value)
    assert message.startswith("demo: the file system holding ")
    assert str(full_dir / "logs") in message and "is full" in message
    assert "FWBUILD_BUILD_DIR" in message


@pytest.mark.unit
def test_log_that_cannot_be_written_without_a_mount(tmp_path: Path) -> None:
    """The same, anywhere: /dev/full answers every write with ENOSPC."""
    log = tmp_path / "logs" / "build.log"
    log.parent.mkdir()
    log.symlink_to("/dev/full")
    with pytest.raises(BuildError) as err:
        context(tmp_path / "src", log).run("true")
    assert f"the file system holding {log.parent}" in str(err.value)
    assert "is full" in str(err.value)


@pytest.mark.unit
def test_command_filling_the_disk_says_the_disk_is_full(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=256k") as small:
        ctx = context(small / "src", tmp_path / "logs" / "build.log")
        with pytest.raises(StepError) as err:
            ctx.run("sh", "-c", "cat /dev/zero > big")
    message = str(err.value)
    assert "No space left on device" in message  # the command's own words, from the log
    assert f"the file system holding {small / 'src'} is full" in message


@pytest.mark.unit
def test_copy_into_a_read_only_staging_is_a_build_error(tmp_path: Path, readonly_dir: Path) -> None:
    ctx = context(tmp_path / "src", tmp_path / "logs" / "install.log")
    (ctx.srcdir / "hello").write_text("hi\n")
    ctx.staging = readonly_dir / "staging"
    with pytest.raises(BuildError) as err:
        ctx.install_file("hello", "/usr/bin/hello")
    assert str(readonly_dir) in str(err.value), err.value


def test_disk_filling_up_during_a_stage_is_named_not_a_traceback(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    recipe = proj / "recipes" / "hello.py"
    good = recipe.read_text()
    recipe.write_text(
        good
        + "\n    def build(self, ctx):\n        super().build(ctx)\n"
        + '        (ctx.srcdir / "huge").write_bytes(bytes(64 << 20))  # more than the disk has\n'
    )
    with tmpfs(tmp_path / "small", "size=32m") as small:
        env = doit_env(FWBUILD_BUILD_DIR=str(small / "build"))
        run = run_doit(proj, "rootfs", env=env)
        assert run.returncode != 0
        no_traceback(run.output)
        assert f"the file system holding {small / 'build'} is full" in run.output, run.output
        assert "build:hello" in run.ran and "install:hello" not in run.ran

        # space made (the half-written file removed, the recipe fixed): the next run reads its
        # records and goes on from the failed stage
        (small / "build" / "hello" / "src" / "huge").unlink()
        recipe.write_text(good)
        again = run_doit(proj, "rootfs", env=env)
        assert again.returncode == 0, again.output
        assert "fetch:libgreet" not in again.ran and "install:libgreet" not in again.ran
        assert "install:hello" in again.ran
