"""One build directory, one build at a time.

Two builds in one build directory would unpack, patch and replace the same trees at once (a
kernel tree half-replaced by one while the other stamps it patched). A ``doit`` command that runs
tasks therefore takes an exclusive ``flock`` on ``<build>/.lock`` for its whole run, in doit's
main process before any task runs (``fwbuild.report.BuildReporter``); the worker processes of
``doit -n N`` are forked from it and share the lock. ``doit list``/``info`` run no tasks and
take no lock. The holder writes its pid into the file, so a second build can say whom it waits
for; ``FWBUILD_NO_WAIT=1`` makes it refuse at once instead. The kernel drops the lock when the
process ends, however it ends: there is no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import TextIO

from fwbuild.envflag import env_flag
from fwbuild.errors import BuildError, ConfigError

LOCK_NAME = ".lock"
_PID_WIDTH = 20  # wider than any pid, so a shorter one never leaves digits of the last behind
_held: dict[Path, int] = {}  # build directory -> descriptor, kept open for the process's life


def _holder(fd: int) -> str:
    raw = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return f"pid {raw}" if raw.isdigit() else "pid unknown"


def lock_build_dir(build: Path, *, out: TextIO | None = None) -> None:
    """Hold the build directory's lock until this process exits; wait for it, or refuse at once
    with ``FWBUILD_NO_WAIT=1`` (a ConfigError naming the directory and the holder's pid)."""
    build = build.resolve()
    if build in _held:
        return
    out = out or sys.stderr
    build.mkdir(parents=True, exist_ok=True)
    # O_CLOEXEC: the commands the build runs never inherit it; doit's forked workers do.
    fd = os.open(build / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if env_flag("FWBUILD_NO_WAIT"):
                raise ConfigError(
                    f"another build is running in {build} ({holder}; lock {build / LOCK_NAME}) "
                    "and FWBUILD_NO_WAIT is set, so this one does not wait; run it again when "
                    "that build has finished, or give it its own FWBUILD_BUILD_DIR"
                ) from None
            out.write(f"fwbuild: waiting for the build in {build} ({holder}) to finish…\n")
            out.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
            out.write(f"fwbuild: the other build in {build} finished; this one starts now\n")
            out.flush()
        # Overwritten in place, padded to a fixed width, not truncated first: a truncate is a
        # journal transaction, which a busy disk can make every no-op build wait for.
        os.pwrite(fd, f"{os.getpid():<{_PID_WIDTH}}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _held[build] = fd


def lock_build_dir_or_exit(build: Path) -> None:
    """:func:`lock_build_dir` for a doit run: a refusal is its one-line message and exit 2."""
    try:
        lock_build_dir(build)
    except BuildError as exc:
        print(f"fwbuild: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
