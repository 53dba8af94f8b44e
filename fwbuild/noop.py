"""The no-op shortcut: a run whose inputs have not moved since a run that found nothing to do.

A ``doit`` run that finds every task up to date still loads the board, every recipe and the
engine, computes every stage's key and reads every stamp, only to conclude that nothing changed.
Like make and ninja, which only ``stat`` their inputs, the run after such a no-op asks the file
system first:

* While a run evaluates (:func:`record`), everything it looks at is written down: each file it
  opens (Python's ``open`` audit event, which also sees the import system read every module, and
  the source beside each bytecode file it reads), each path it stats or checks for access, each
  directory it lists and every entry ``os.scandir`` gave it, each with its ``stat`` (mode,
  inode, device, size, modification and change times to the nanosecond) or the error it gave.
  So are the command line, the working directory, the environment (as a digest: it may hold
  secrets), the user and groups, the Python and the CPU count.
* A run that ends with nothing run, nothing failed, nothing restored from the build cache, no
  process started, no socket opened and nothing written but the engine's own bookkeeping, and
  whose inputs are all still as it saw them, keeps its record in ``<build>/.noop/`` (mode 0600,
  one file per command line) unless one of them changed in the 2 seconds before the run began:
  a file written in the same clock tick as its ``stat`` would look unchanged later (git's
  "racily clean" rule, as fwbuild.codedigest applies it).
* The next run with the same command line, directory, environment, user and Python stats the
  same paths before the engine is loaded (:func:`shortcut`). If each is as recorded, the full
  evaluation would read the same bytes and reach the same answer, so doit gets the tasks asked
  for as up to date and prints what the recorded run printed. Any difference (a touched recipe,
  a deleted stamp, another variable) falls back to the full evaluation, which records again.

What the record cannot see it does not guess: the free space of the build's file systems is
checked on every run (fwbuild.dodo.check_directories), and ``FWBUILD_FULL_CHECK=1`` evaluates in
full without reading or writing a record (the benchmark times both ways).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FORMAT = 1
RECORDS = ".noop"  # under the build directory
SWITCH = "FWBUILD_FULL_CHECK"
_SETTLED_NS = 2_000_000_000  # fwbuild.codedigest's rule
# Set by the shell for its own bookkeeping; nothing in a build reads them (the working directory
# is compared as os.getcwd() gives it).
_VOLATILE = frozenset({"_", "OLDPWD", "PWD", "SHLVL"})
# Files every run may write whose content no run's answer depends on: the build lock and the
# digest cache (fwbuild.lock, fwbuild.codedigest).
_BOOKKEEPING = ("/.lock", "/.code-digests.json")
# What the record cannot follow: a process started or the network asked.
_OPAQUE = ("subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "pty.", "socket.", "urllib.", "ctypes.dlopen")  # fmt: skip
_WRITES = frozenset({"os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.chmod",
                     "os.chown", "os.utime", "os.truncate", "os.setxattr", "os.removexattr",
                     "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree",
                     "shutil.rmtree", "shutil.move", "shutil.make_archive",
                     "shutil.unpack_archive"})  # fmt: skip
_LOOKS = frozenset({"open", "os.listdir", "os.scandir", "os.mkdir"})


def _event_kind(event: str) -> str | None:
    if event in _LOOKS or event in _WRITES:
        return "looks or writes"
    return "opaque" if event.startswith(_OPAQUE) else None


_EVENTS: dict[str, str | None] = {}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

Signature = list[int]


def _signature(st: os.stat_result, kind: str) -> Signature:
    """What a ``stat`` tells: of a directory only what it is, unless it was listed. Its times
    move whenever a neighbour of what the run looked at comes or goes (``/tmp``), and what a run
    learns from ``stat`` of a directory is that it is one (or where a path leads)."""
    if kind != "listed" and stat.S_ISDIR(st.st_mode):
        return [st.st_mode, st.st_ino, st.st_dev]
    return [st.st_mode, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


_real_stat = os.stat
_real_lstat = os.lstat


def _probe(path: str, kind: str) -> Signature:
    """The path's signature now, or ``[-errno]`` for the error its ``stat`` gives; ``kind`` is
    how the run looked: ``stat``, ``lstat`` (the link itself) or ``listed`` (its entries)."""
    try:
        return _signature(_real_lstat(path) if kind == "lstat" else _real_stat(path), kind)
    except OSError as exc:
        return [-(exc.errno or 0)]


# doit's commands that run no build (tasks may not be named so): never recorded nor shortcut;
# `doit clean` removing a kernel tree would have every file of it noted for nothing.
_NOT_A_BUILD = frozenset({"clean", "dumpdb", "forget", "help", "ignore", "info", "list",
                          "reset-dep", "strace", "tabcompletion"})  # fmt: skip


def enabled() -> bool:
    """Whether this run may use or keep a record; FWBUILD_FULL_CHECK that is no boolean is a
    ConfigError (fwbuild.envflag), as every on/off setting is."""
    from fwbuild.envflag import env_flag

    return not _NOT_A_BUILD.intersection(sys.argv[1:]) and not env_flag(SWITCH)


def _context(board_file: Path, project_dir: Path) -> dict[str, Any]:
    env = sorted((k, v) for k, v in os.environ.items() if k not in _VOLATILE)
    return {
        "format": FORMAT,
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "board": os.fspath(board_file),
        "project": os.fspath(project_dir),
        "environment": hashlib.sha256(json.dumps(env).encode()).hexdigest(),
        "user": [os.geteuid(), os.getegid(), *sorted(os.getgroups())],
        "python": [sys.executable, sys.version, *sys.path],
        "cpus": os.cpu_count(),
    }


def _record_file(context: dict[str, Any], project_dir: Path) -> Path:
    """Where this command line's record lives: under the build directory that the environment
    names, or the default one (a board that moves its build directory in the board file itself
    gets no record: its place is known only once the board is read)."""
    build = os.path.join(project_dir, os.environ.get("FWBUILD_BUILD_DIR") or "build")
    which = [context[k] for k in ("argv", "cwd", "board", "project")]
    name = hashlib.sha256(json.dumps(which).encode()).hexdigest()[:16]
    return Path(os.path.abspath(build), RECORDS, f"{name}.json")


# --- the shortcut ------------------------------------------------------------------------------
def shortcut(board_file: Path, project_dir: Path) -> dict[str, Any] | None:
    """doit's tasks and ``DOIT_CONFIG`` for a run the record shows to be a no-op, else None."""
    if not enabled():
        return None
    context = _context(board_file, project_dir)
    try:
        with open(_record_file(context, project_dir), "rb") as fh:
            saved = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("context") != context:
        return None
    try:
        # The run's lock first (as a full run holds it before it looks at a stamp): a build
        # running in this directory now may change what is about to be compared.
        from fwbuild.lock import lock_build_dir_or_exit

        lock_build_dir_or_exit(Path(saved["build"]))
        for kind, entries in saved["seen"].items():
            for path, signature in entries.items():
                if _probe(path, kind) != signature:
                    return None
        return _tasks(saved)
    except (KeyError, TypeError, ValueError, AttributeError):  # a record of another shape
        return None


def _tasks(saved: dict[str, Any]) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, has_actions in saved["selected"]:
        task: dict[str, Any] = (
            {"actions": [_unreachable], "uptodate": [True]} if has_actions else {"actions": None}
        )
        basename, _, sub = name.partition(":")
        if sub:
            groups.setdefault(basename, []).append({"basename": basename, "name": sub, **task})
        else:
            tasks[f"task_{name}"] = _creator(name, task)
    for basename, subtasks in groups.items():
        tasks[f"task_{basename}"] = _group(basename, subtasks)
    config = dict(saved["config"])
    config["reporter"] = _reporter(saved)
    tasks["DOIT_CONFIG"] = config
    tasks["paths"] = saved["paths"]  # for fwbuild.dodo.check_directories
    return tasks


def _creator(name: str, task: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    def create() -> dict[str, Any]:
        return dict(task)

    create.__name__ = f"task_{name}"
    return create


def _group(basename: str, subtasks: list[dict[str, Any]]) -> Callable[[], Iterator[Any]]:
    def create() -> Iterator[dict[str, Any]]:
        yield from (dict(t) for t in subtasks)

    create.__name__ = f"task_{basename}"
    return create


def _unreachable() -> None:  # pragma: no cover - the tasks are up to date by construction
    raise RuntimeError("fwbuild.noop: a task of the no-op shortcut ran")


def _reporter(saved: dict[str, Any]) -> type:
    """doit's console output as the recorded run printed it, then its report line (the build
    lock is held already: :func:`shortcut` took it before it compared)."""
    from doit.reporter import ConsoleReporter

    class ShortcutReporter(ConsoleReporter):
        desc = "console output of the recorded no-op, then its report line"

        def __init__(self, outstream: Any, options: dict[str, Any]) -> None:
            super().__init__(outstream, options)  # the lock is held since the check (shortcut)
            self.t0 = time.monotonic()

        def skip_uptodate(self, task: Any) -> None:
            pass  # the recorded lines say it, in the recorded order

        def complete_run(self) -> None:
            if not (self.failures or self.runtime_errors):
                self.write("".join(f"{line}\n" for line in saved["lines"]))
                self.write(
                    f"report: 0 ran, 0 failed, {saved['uptodate']} up to date, "
                    f"{time.monotonic() - self.t0:.1f} s (nothing ran: {saved['report']} is kept)\n"
                )
            super().complete_run()

    return ShortcutReporter


# --- the record --------------------------------------------------------------------------------
class _Recorder:
    """Everything one run looks at, from :func:`record` to :func:`finish`."""

    def __init__(self, board_file: Path, project_dir: Path) -> None:
        self.context = _context(board_file, project_dir)
        self.file = _record_file(self.context, project_dir)
        self.started_ns = time.time_ns()
        self.seen: dict[str, dict[str, Signature]] = {"stat": {}, "lstat": {}, "listed": {}}
        self.why_not: str | None = None  # why this run's record cannot be kept
        self.active = True
        # Made now, so that it is not a change the run makes; only in a directory the build has
        # made its own (fwbuild.trees' marker): a new, empty one must stay empty until adopted.
        from fwbuild.trees import MARKER

        if os.path.exists(os.path.join(self.file.parent.parent, MARKER)):
            with contextlib.suppress(OSError):
                self.file.parent.mkdir(mode=0o700, exist_ok=True)
        self.originals = {n: getattr(os, n) for n in ("stat", "lstat", "access", "readlink")}
        self.originals["scandir"] = os.scandir
        # What was read before this began: the modules loaded (doit, the standard library, this
        # one), the directories imports search (a module added there may shadow one), and
        # doit's own configuration files.
        for module in list(sys.modules.values()):
            source = getattr(module, "__file__", None)
            if isinstance(source, str):
                self._saw(source, "stat")
        for directory in sys.path:
            self._saw(directory or ".", "listed")
        for config in ("pyproject.toml", "doit.cfg"):
            self._saw(config, "stat")

    # what the run looks at
    def _saw(self, path: Any, kind: str, signature: Signature | None = None) -> None:
        if isinstance(path, int):  # a descriptor: what it is was seen when it was opened
            return
        path = os.fsdecode(path)
        if path.endswith(_BOOKKEEPING):
            return
        if not path.startswith("/"):  # as the run named it, from where it was
            path = os.path.join(os.getcwd(), path)
        entries = self.seen[kind]
        if path not in entries:
            entries[path] = signature if signature is not None else _probe(path, kind)

    def _wrote(self, what: str, path: Any) -> None:
        if isinstance(path, int) or not os.fsdecode(path).endswith(_BOOKKEEPING):
            self.why_not = self.why_not or f"{what} {path!r}"

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        # Called for every audit event of the process (each import, compile, exec…): most are
        # none of ours, and are told apart once each.
        if not self.active or _EVENTS.setdefault(event, _event_kind(event)) is None:
            return
        try:
            if event == "open":
                path, mode, flags = args
                writes = (flags or 0) & _WRITE_FLAGS or any(c in (mode or "") for c in "wax+")
                exclusive = (flags or 0) & os.O_EXCL or "x" in (mode or "")
                if writes and exclusive and os.path.lexists(path):
                    self._saw(path, "lstat")  # fails, writing nothing: the run learns it exists
                elif writes:
                    self._wrote("wrote", path)
                elif path is not None:
                    self._saw(path, "stat")
                    name = os.fsdecode(path) if not isinstance(path, int) else ""
                    if name.endswith(".pyc") and "__pycache__" in name:  # its source, too
                        head, _, tail = name.rpartition("/__pycache__/")
                        self._saw(f"{head}/{tail.split('.', 1)[0]}.py", "stat")
            elif event in ("os.listdir", "os.scandir"):
                if isinstance(args[0], int):
                    self.why_not = self.why_not or f"{event} of a directory descriptor"
                self._saw(args[0] if args[0] is not None else ".", "listed")
            elif event == "os.mkdir":
                if not os.path.isdir(args[0]):
                    self._wrote("made", args[0])
            elif event in _WRITES:
                self._wrote(event, args[0])
            elif event.startswith(_OPAQUE):
                self.why_not = self.why_not or event
        except Exception as exc:  # never break the run being recorded; just do not keep it
            self.why_not = self.why_not or f"{event}: {type(exc).__name__}"

    def patch(self) -> None:
        """``os.stat`` and friends, which raise no audit event, report what they looked at."""
        real = self.originals

        def stat(path: Any, *, dir_fd: Any = None, follow_symlinks: bool = True) -> Any:
            return self._noted(
                lambda: real["stat"](path, dir_fd=dir_fd, follow_symlinks=follow_symlinks),
                path, dir_fd, follow_symlinks,
            )  # fmt: skip

        def lstat(path: Any, *, dir_fd: Any = None) -> Any:
            return self._noted(lambda: real["lstat"](path, dir_fd=dir_fd), path, dir_fd, False)

        def access(path: Any, mode: int, **kw: Any) -> bool:
            self._plain(path, kw.get("dir_fd"), kw.get("follow_symlinks", True))
            return real["access"](path, mode, **kw)

        def readlink(path: Any, *, dir_fd: Any = None) -> Any:
            self._plain(path, dir_fd, False)
            return real["readlink"](path, dir_fd=dir_fd)

        def scandir(path: Any = ".") -> Any:
            return _Listing(self, real["scandir"](path))

        os.stat, os.lstat, os.access, os.readlink = stat, lstat, access, readlink
        os.scandir = scandir

    def unpatch(self) -> None:
        for name, function in self.originals.items():
            setattr(os, name, function)

    def _plain(self, path: Any, dir_fd: Any, follow: bool) -> None:
        if dir_fd is not None and self.active:
            self.why_not = self.why_not or "a path relative to a directory descriptor"
        elif self.active:
            self._saw(path, "stat" if follow else "lstat")

    def _noted(self, call: Callable[[], Any], path: Any, dir_fd: Any, follow: bool) -> Any:
        if not self.active or isinstance(path, int):
            return call()
        kind = "stat" if follow else "lstat"
        if dir_fd is not None:
            self.why_not = self.why_not or "a path relative to a directory descriptor"
        try:
            st = call()
        except OSError as exc:
            self._saw(path, kind, [-(exc.errno or 0)])
            raise
        self._saw(path, kind, _signature(st, kind))
        return st

    # the end of the run
    def keep(self, report: dict[str, Any]) -> str | None:
        """Write the record; None, or why it was not kept."""
        self.active = False
        self.unpatch()
        if self.why_not:
            return self.why_not
        if os.path.realpath(self.file.parent.parent) != os.path.realpath(report["build"]):
            return "the board file moves the build directory"
        from fwbuild import codedigest

        codedigest.flush()  # its rename changes the build directory, which is an input
        settled = self.started_ns - _SETTLED_NS
        for kind, entries in self.seen.items():
            for path, signature in entries.items():
                if _probe(path, kind) != signature:
                    return f"{path} changed during the run"
                if len(signature) == 6 and max(signature[4], signature[5]) >= settled:
                    return f"{path} changed just before the run"
        data = {
            "context": self.context,
            "seen": self.seen,
            **report,
        }
        from fwbuild.fsutil import atomic_write

        try:
            self.file.parent.mkdir(mode=0o700, exist_ok=True)
            atomic_write(self.file, json.dumps(data, separators=(",", ":")), mode=0o600)
        except OSError as exc:
            return f"{self.file}: {exc.strerror}"
        return None


class _Listing:
    """``os.scandir``'s iterator, noting each entry (its ``stat`` is cached for the caller)."""

    def __init__(self, recorder: _Recorder, listing: Any) -> None:
        self.recorder, self.listing = recorder, listing

    def __iter__(self) -> _Listing:
        return self

    def __next__(self) -> Any:
        entry = next(self.listing)
        if self.recorder.active:
            try:
                signature = _signature(entry.stat(follow_symlinks=False), "lstat")
            except OSError as exc:
                signature = [-(exc.errno or 0)]
            self.recorder._saw(entry.path, "lstat", signature)
        return entry

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.listing.close()

    def close(self) -> None:
        self.listing.close()


_RECORDER: _Recorder | None = None


def record(board_file: Path, project_dir: Path) -> None:
    """Start writing down what this run looks at (once per process; never when switched off)."""
    global _RECORDER
    if _RECORDER is not None or not enabled():
        return
    _RECORDER = _Recorder(board_file, project_dir)
    sys.addaudithook(_RECORDER.hook)  # an audit hook stays for the process's life: it goes idle
    _RECORDER.patch()
    os.register_at_fork(after_in_child=stop)  # doit -n N's workers run tasks: nothing to note


def stop() -> None:
    """A task is about to run: this run is no no-op, and a build's own work is not noted."""
    recorder = _RECORDER
    if recorder is not None and recorder.active:
        recorder.active = False
        recorder.unpatch()
        recorder.why_not = recorder.why_not or "tasks ran"


def finish(nothing_ran: bool, report: dict[str, Any]) -> str | None:
    """Keep the record when the run was a no-op; None, or why not (for the tests)."""
    global _RECORDER
    recorder, _RECORDER = _RECORDER, None
    if recorder is None:
        return "not recording"
    if not nothing_ran:
        recorder.active = False
        recorder.unpatch()
        why: str | None = "tasks ran"
    else:
        why = recorder.keep(report)
    # Why this command's next run evaluates in full, for whoever wonders (and for the tests).
    with contextlib.suppress(OSError):
        reason = recorder.file.with_suffix(".why")
        reason.parent.mkdir(mode=0o700, exist_ok=True)  # (not the build directory itself)
        if why is None:
            reason.unlink(missing_ok=True)
        else:
            reason.write_text(f"{why}\n")
    return why
