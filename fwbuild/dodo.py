"""What a project's ``dodo.py`` calls: one line turns a board file into doit's tasks.

Before any task exists, the directories the build writes are checked, by name first (never /, a
home, the project: fwbuild.trees.check_names), then on disk (:func:`check_directories`): a build
directory whose path has whitespace, or a build, rootfs or output directory that is read-only or
on a full disk, is refused with what to do, instead of failing minutes later (or with a
traceback) in the middle of a package. doit's own record of the run is written so that a disk
filling up mid-build neither ends in a traceback nor leaves that record unreadable
(:func:`careful_dep_file`). A run whose every input is as the last no-op found it is given that
no-op's tasks as up to date before the board is even read (fwbuild.noop).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwbuild.errors import BuildError, ConfigError
from fwbuild.fsutil import atomic_write

if TYPE_CHECKING:
    from fwbuild.config import Paths


def load(board_file: Path, project_dir: Path | None = None) -> dict[str, Any]:
    """``task_*`` functions and ``DOIT_CONFIG`` for the board; a bad board exits with its error.

    ``project_dir`` holds recipes/, patches/ and configs/ (default: the board file's grandparent).
    """
    from fwbuild import noop

    careful_dep_file()
    project_root = project_dir or board_file.parent.parent
    try:
        # A run whose inputs are as a no-op left them is a no-op too: nothing else is loaded.
        shortcut = noop.shortcut(board_file, project_root)
        if shortcut is not None:
            check_directories(_RecordedPaths(shortcut.pop("paths")))
            return shortcut
        noop.record(board_file, project_root)
        from fwbuild.project import Project
        from fwbuild.tasks import doit_config, make_tasks
        from fwbuild.trees import check_names

        project = Project.load(board_file, project_dir)
        tasks: dict[str, Any] = make_tasks(project)
        guard = check_names(project)  # by name first: ROOTFS_DIR=/ is refused as /, writable or not
        check_directories(project.board.paths)
        tasks["DOIT_CONFIG"] = doit_config(project, guard)
    except BuildError as exc:
        print(f"fwbuild: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as exc:  # e.g. the build directory cannot be made
        from fwbuild.steps import storage_error

        error = storage_error(exc) or ConfigError(
            f"cannot prepare {os.fsdecode(exc.filename or '')}: {exc.strerror}; check that the "
            "build, rootfs and output directories (FWBUILD_BUILD_DIR, ROOTFS_DIR, "
            "FWBUILD_OUTPUT_DIR) can be written by this user"
        )
        print(f"fwbuild: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return tasks


class _RecordedPaths:
    """The directories a no-op's record names, as :func:`check_directories` reads them."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.build, self.rootfs, self.output = (
            Path(paths[k]) for k in ("build", "rootfs", "output")
        )


def check_directories(paths: Paths | _RecordedPaths) -> None:
    """Refuse directories the build cannot work in, naming the setting that moves each one."""
    from fwbuild.fsutil import LOW_SPACE, free_bytes

    if any(c.isspace() for c in str(paths.build)):
        raise ConfigError(
            f"the build directory {paths.build} has whitespace in its path, and the packages' "
            "make-based build systems (2005-era Makefiles and configure scripts) cannot build "
            "there. Set FWBUILD_BUILD_DIR to a directory whose path has no spaces (for example "
            "FWBUILD_BUILD_DIR=$HOME/siso-build) and run again; the project itself may stay where "
            "it is."
        )
    for directory, what, setting, replaced in (
        (paths.build, "build directory", "FWBUILD_BUILD_DIR", False),
        (paths.rootfs, "rootfs directory", "ROOTFS_DIR", True),
        (paths.output, "output directory", "FWBUILD_OUTPUT_DIR", True),
    ):
        # What must be writable: the directory itself and, for a tree replaced whole by a rename
        # beside it, the directory it is in.
        for path in [directory, directory.parent] if replaced else [directory]:
            existing = path
            while not os.path.lexists(existing) and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                raise ConfigError(
                    f"the {what} {directory} cannot be made: {existing} is not a directory. "
                    f"Set {setting} to a directory (or a path where one can be made)."
                )
            if not os.access(existing, os.W_OK | os.X_OK):
                readonly = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
                why = "is on a read-only file system" if readonly else "is not writable by you"
                raise ConfigError(
                    f"the {what} {directory} cannot be written: {existing} {why}. Set {setting} "
                    "to a writable directory and run again."
                )
            free = free_bytes(existing)
            if free is not None and free < LOW_SPACE:
                raise ConfigError(
                    f"the {what} {directory} cannot be written: the file system holding "
                    f"{existing} is full ({free} bytes free). Make space there, or set {setting} "
                    "to a directory on a larger disk, and run again."
                )


_ABSENT = object()  # a value doit's record does not hold yet


def careful_dep_file() -> None:
    """Make doit write its dependency file (``build/.doit.db``) beside and rename it.

    doit rewrites it in place when a run ends: on a disk that filled up during the build that
    truncates it, the run ends in a traceback after the build's own message, and the next run
    fails to read it. Written beside and renamed, a failed write leaves the previous record;
    the stamps decide what is up to date anyway, so the message says that nothing is lost.

    A run that changed nothing in it (a no-op: doit records only the tasks it ran) leaves the
    file alone: at a thousand packages it is 400 KB encoded and written for nothing.
    """
    from doit.dependency import JsonDB

    if getattr(JsonDB.dump, "fwbuild", False):
        return
    real_set, real_remove, real_remove_all = JsonDB.set, JsonDB.remove, JsonDB.remove_all

    def changed(self: JsonDB) -> None:
        self.fwbuild_changed = True

    def set_value(self: JsonDB, task_id: str, dependency: str, value: Any) -> None:
        # compared as the file would hold it: doit sets tuples that the file reads back as lists
        as_stored = self.codec.decode(self.codec.encode(value))
        if self._db.get(task_id, {}).get(dependency, _ABSENT) != as_stored:
            changed(self)
        real_set(self, task_id, dependency, value)

    def remove(self: JsonDB, task_id: str) -> None:
        if task_id in self._db:
            changed(self)
        real_remove(self, task_id)

    def remove_all(self: JsonDB) -> None:
        changed(self)
        real_remove_all(self)

    def dump(self: JsonDB) -> None:
        if not getattr(self, "fwbuild_changed", False) and os.path.exists(self.name):
            return
        try:
            atomic_write(Path(self.name), self.codec.encode(self._db))
        except OSError as exc:
            from fwbuild.steps import storage_error

            error = storage_error(exc, Path(self.name))
            if error is None:
                raise
            print(
                f"fwbuild: doit's record of this run ({self.name}) was not saved, which loses "
                f"nothing (the build's stamps decide what runs next time): {error}",
                file=sys.stderr,
            )

    dump.fwbuild = True  # type: ignore[attr-defined]
    JsonDB.set, JsonDB.remove, JsonDB.remove_all = set_value, remove, remove_all
    JsonDB.dump = dump
