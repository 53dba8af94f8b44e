"""Running a package's configure/build/install commands: environment, logs, failures.

Every command of a stage appends to ``<work>/logs/<stage>.log`` (the command line first, then its
output). A failing command raises :class:`StepError` with the log's last lines and its path, which
is what a person reading a CI log needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fwbuild.errors import StepError
from fwbuild.recipe import describe

if TYPE_CHECKING:
    from fwbuild.recipe import Package
    from fwbuild.toolchain import Toolchain

LOG_TAIL_LINES = 25
COMMAND_TIME = "# fwbuild:"

# Only these host variables reach a build: a developer's CFLAGS or PKG_CONFIG_PATH must not leak in.
_PASS_THROUGH = ("PATH", "HOME", "TERM", "LANG", "LC_ALL", "TMPDIR", "SOURCE_DATE_EPOCH", "TZ")


@dataclass
class Context:
    """What a recipe step sees: its package, directories, environment and a logged runner."""

    package: Package
    srcdir: Path
    staging: Path
    deps_staging: dict[str, Path]
    toolchain: Toolchain
    build_triplet: str
    jobs: int
    log_path: Path
    base_env: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return self.base_env

    def run(
        self,
        *cmd: str | os.PathLike[str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        interactive: bool = False,
        input: bytes | None = None,
    ) -> None:
        """Run a command in the source tree, output to the stage's log (or the terminal)."""
        argv = [str(c) for c in cmd]
        full_env = {**self.base_env, **(env or {})}
        where = cwd or self.srcdir
        if interactive:  # menuconfig and friends need the user's terminal
            full_env["TERM"] = os.environ.get("TERM", "vt100")
            if subprocess.run(argv, cwd=where, env=full_env, check=False).returncode != 0:
                raise StepError(f"`{describe(argv)}` failed", package=self.package.name)
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ cd {where} && {describe(argv)}\n".encode())
            log.flush()
            started = time.monotonic()
            try:
                proc = subprocess.run(
                    argv,
                    cwd=where,
                    env=full_env,
                    input=input,
                    stdin=None if input is not None else subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            except FileNotFoundError:
                raise StepError(
                    f"cannot run {argv[0]!r} in {where}: no such program; install it or fix the "
                    f"recipe {self.package.recipe_file}",
                    package=self.package.name,
                ) from None
            # what the command itself cost: bench/ compares it with the whole build's time
            seconds = time.monotonic() - started
            log.write(f"{COMMAND_TIME} exit {proc.returncode} after {seconds:.3f} s\n".encode())
        if proc.returncode != 0:
            raise StepError(
                f"`{describe(argv)}` failed with exit code {proc.returncode} in {where}.\n"
                f"--- last lines of {self.log_path} ---\n{log_tail(self.log_path)}\n"
                f"--- full log: {self.log_path}",
                package=self.package.name,
            )

    def make(self, *args: str, jobs: int | None = None, cwd: Path | None = None) -> None:
        self.run("make", f"-j{jobs or self.jobs}", *args, cwd=cwd)

    def install_file(self, src: str | Path, dest: str, mode: int = 0o644) -> None:
        """Copy ``src`` (relative to the source tree) to ``dest`` (relative to the staging root)."""
        source = self.srcdir / src
        target = self.staging / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(mode)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            tail = deque(fh, maxlen=lines)
    except FileNotFoundError:
        return "(no log)"
    return b"".join(tail).decode(errors="replace").rstrip()


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env.setdefault("LC_ALL", "C")
    env.update(extra)
    return env
