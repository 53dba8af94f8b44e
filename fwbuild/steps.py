"""Running a package's configure/build/install commands: environment, logs, failures.

Every command of a stage appends to ``<work>/logs/<stage>.log`` (the command line first, then its
output). A failing command raises :class:`StepError` with the log's last lines and its path, which
is what a person reading a CI log needs. A full or read-only disk is said as such, naming the
directory (:func:`storage_error`), never as a Python traceback.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fwbuild.errors import BuildError, StepError
from fwbuild.fsutil import LOW_SPACE, free_bytes
from fwbuild.recipe import describe

if TYPE_CHECKING:
    from fwbuild.arch import Arch
    from fwbuild.recipe import Package
    from fwbuild.toolchain import Toolchain

LOG_TAIL_LINES = 25
# Lines that say what went wrong, from compilers and linkers (``ld.lld: error: undefined symbol``).
_ERROR_LINE = re.compile(r"\berror:|undefined (symbol|reference)", re.IGNORECASE)
ERROR_LINES = 80  # shown at most, whole
COMMAND_TIME = "# fwbuild:"

# The state of a file system that makes every write there fail, whatever the build does.
DISK_STATES = {
    errno.ENOSPC: "is full",
    errno.EDQUOT: "is over its disk quota",
    errno.EROFS: "is read-only",
}
# Permission bits, which stop everyone but root: only where the failing call is known to write.
_WRITE_STATES = {
    errno.EACCES: "is not writable by this user",
    errno.EPERM: "is not writable by this user",
}

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

    @property
    def arch(self) -> Arch:
        """The board's target architecture under build systems' names (fwbuild.arch)."""
        return self.package.arch

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
        try:
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
                        f"cannot run {argv[0]!r} in {where}: no such program; install it or fix "
                        f"the recipe {self.package.recipe_file}",
                        package=self.package.name,
                    ) from None
                # what the command itself cost: bench/ compares it with the whole build's time
                seconds = time.monotonic() - started
                log.write(f"{COMMAND_TIME} exit {proc.returncode} after {seconds:.3f} s\n".encode())
        except OSError as exc:
            raise storage_error(exc, self.log_path, self.package.name) or exc from None
        if proc.returncode != 0:
            # A command that ran out of space says so somewhere in its log, if the log itself
            # could still be written; the file system's state says it for sure.
            full = low_space_note(where)
            raise StepError(
                f"`{describe(argv)}` failed with exit code {proc.returncode} in {where}.\n"
                f"{log_errors(self.log_path)}"
                f"--- last lines of {self.log_path} ---\n{log_tail(self.log_path)}\n"
                f"--- full log: {self.log_path}{full}",
                package=self.package.name,
                log=self.log_path,
            )

    def make(self, *args: str, jobs: int | None = None, cwd: Path | None = None) -> None:
        self.run("make", f"-j{jobs or self.jobs}", *args, cwd=cwd)

    def install_file(self, src: str | Path, dest: str, mode: int = 0o644) -> None:
        """Copy ``src`` (relative to the source tree) to ``dest`` (relative to the staging root)."""
        source = self.srcdir / src
        target = self.staging / dest.lstrip("/")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(mode)
        except OSError as exc:
            raise storage_error(exc, target, self.package.name) or exc from None


def storage_error(
    exc: OSError,
    path: Path | None = None,
    package: str | None = None,
    *,
    writing: bool = True,
    candidates: Iterable[Path] = (),
) -> BuildError | None:
    """The error to show for ``exc`` when it says a disk is full or read-only, else None.

    It names the directory and the settings that move the build's trees, because a traceback
    from deep inside a step says neither. ``writing``: the failed call was a write (so a
    permission error means the directory is not writable). A failed ``write()`` names no file:
    then the first of ``candidates`` (the build's directories) that is full or read-only is named.
    """
    state = DISK_STATES.get(exc.errno or 0) or (
        _WRITE_STATES.get(exc.errno or 0) if writing else None
    )
    if state is None:
        return None
    target = path or (Path(os.fsdecode(exc.filename)) if exc.filename else None)
    if target is None:
        target = next((c for c in candidates if _in_state(c, exc.errno or 0)), None)
    if target is None:
        where = "a directory of the build"
    else:
        directory = target if target.is_dir() else target.parent
        where = f"{directory} (writing {target})" if directory != target else str(directory)
    return BuildError(
        f"the file system holding {where} {state}: {exc.strerror}. "
        + (
            "Make space there and run the build again (finished stages are kept), or move the "
            "build's trees to a larger disk with FWBUILD_BUILD_DIR, ROOTFS_DIR and "
            "FWBUILD_OUTPUT_DIR."
            if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else "Point FWBUILD_BUILD_DIR, ROOTFS_DIR or FWBUILD_OUTPUT_DIR (whichever holds "
            "it) at a writable directory and run the build again."
        ),
        package=package,
    )


def _in_state(path: Path, code: int) -> bool:
    """Whether the file system holding ``path`` is full (ENOSPC, EDQUOT) or read-only (EROFS)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    if code == errno.EROFS:
        try:
            return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
        except OSError:
            return False
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE


def low_space_note(path: Path) -> str:
    """A line for a failure's message when the file system holding ``path`` is (nearly) full."""
    free = free_bytes(path)
    if free is None or free >= LOW_SPACE:
        return ""
    return (
        f"\n--- the file system holding {path} is full ({free} bytes free): make space there "
        "or move the build to a larger disk with FWBUILD_BUILD_DIR, and run the build again"
    )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            tail = deque(fh, maxlen=lines)
    except FileNotFoundError:
        return "(no log)"
    return b"".join(tail).decode(errors="replace").rstrip()


def error_excerpt(output: str, limit: int = ERROR_LINES) -> str:
    """The lines of a compiler's or linker's output that say what went wrong, whole.

    A link that misses 30 symbols says so in 30 ``error:`` lines, each followed by where the
    symbol is used: all of them are kept, cut on line boundaries, never mid-word. Without
    such lines, the output's last ``limit`` lines."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    chosen = [line for line in lines if _ERROR_LINE.search(line)] or lines[-limit:]
    if len(chosen) > limit:
        chosen = [*chosen[:limit], f"… and {len(chosen) - limit} more error line(s)"]
    return "\n".join(chosen) or "(no output)"


def log_errors(path: Path) -> str:
    """The log's error lines that its last lines do not show (most of a long link error is
    above them), as a section of a failure message; "" when the tail shows them all."""
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError:
        return ""
    lines = text.splitlines()
    tail = lines[-LOG_TAIL_LINES:]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    if not errors or all(line in tail for line in errors):
        return ""
    return f"--- error lines of {path} ---\n{error_excerpt(chr(10).join(errors))}\n"


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env.setdefault("LC_ALL", "C")
    env.update(extra)
    return env
