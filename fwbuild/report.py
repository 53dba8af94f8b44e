"""The build report: what ran, for how long and why, at the end of every ``doit`` run.

doit's console output stays as it is (``.  task`` for a task that runs, ``-- task`` for one that
is up to date); after it comes a table of the tasks that ran or failed, slowest first, with when
each started (seconds after the build started), how long it took and why it ran, and, when the
build failed, a last line per failed task naming it, its package and its log. The same, with the
up-to-date tasks (cache hits), goes to ``build/report.json``.

Why a stage ran is read from the stamps (``build/<pkg>/stamps/<stage>.json`` hold the inputs that
made the stage's key): the reporter keeps the stamps as they were when the build started (a
stage removes its own stamp and its later stages' before it works) and compares their inputs with
the inputs the stage runs with, e.g. ``own: 0001-fix.patch`` or ``install:libgreet changed``.

The report never fails a build: if it cannot be made, it says so in one line.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from doit.reporter import ConsoleReporter

from fwbuild.cache import CACHED_STAGES, origin
from fwbuild.fsutil import atomic_write
from fwbuild.project import Project
from fwbuild.stages import BY_NAME, STAGES
from fwbuild.stamps import digest_json, read_stamp

FROM_CACHE = "from cache"  # a stage whose output the build cache restored (fwbuild.cache)
NO_STAMP = "no stamp (new, cleaned, or its last run did not finish)"
_WHY_WIDTH = 60
_ERROR_WIDTH = 200
_LABELS = {  # stage inputs that are lists of named entries
    "own": "own patches",
    "downloaded": "downloaded patches",
    "files": "downloads",
    "board_files": "board files",
    "local_source": "local source",
}


@dataclass
class TaskRecord:
    task: str
    package: str | None
    stage: str
    result: str = "not run"  # ran, failed, up-to-date, ignored, from cache
    started: str | None = None  # UTC, ISO 8601
    offset: float | None = None  # seconds after the build started
    seconds: float | None = None
    why: list[str] = field(default_factory=list)
    log: str | None = None
    error: str | None = None
    _t0: float = field(default=0.0, repr=False)


def _sources(project: Project) -> list[dict[str, str]] | str:
    """Which file stood for each declared download (fwbuild.alternatives); never fails."""
    from fwbuild.alternatives import sources_used

    try:
        return sources_used(project)
    except Exception as exc:  # the report never fails a build
        return f"unknown ({type(exc).__name__}: {exc})"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def _named_entries(value: Any) -> dict[str, str] | None:
    """``[[name, …], …]`` (files, patches, board files) as name -> digest of the entry."""
    if not isinstance(value, list) or not all(
        isinstance(e, list) and e and isinstance(e[0], str) for e in value
    ):
        return None
    return {e[0]: digest_json(e) for e in value}


def diff_inputs(package: str | None, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between a stage's previous inputs and its new ones, in a few words each."""
    reasons: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "runtime":  # digests of what the steps read (a secrets file): never shown
            reasons.append("runtime inputs changed (files the steps read)")
        elif key in STAGES and package:
            reasons.append(f"{key}:{package} changed")
        elif key in {"deps", "packages"} and isinstance(a, dict) and isinstance(b, dict):
            for dep in sorted(set(a) | set(b)):
                if dep not in a:
                    reasons.append(f"new dependency {dep}")
                elif dep not in b:
                    reasons.append(f"no longer depends on {dep}")
                elif a[dep] != b[dep]:
                    reasons.append(f"install:{dep} changed")
        elif isinstance(a, dict) and isinstance(b, dict):
            reasons += [
                f"{key}.{sub}: {_short(a.get(sub))} -> {_short(b.get(sub))}"
                for sub in sorted(set(a) | set(b))
                if a.get(sub) != b.get(sub)
            ]
        elif (na := _named_entries(a)) is not None and (nb := _named_entries(b)) is not None:
            changed = sorted(n for n in set(na) | set(nb) if na.get(n) != nb.get(n))
            reasons.append(f"{_LABELS.get(key, key)}: {', '.join(changed) or 'their order'}")
        elif key == "recipe":
            reasons.append("recipe file changed")
        elif isinstance(a, (str, int, float, bool)) and isinstance(b, (str, int, float, bool)):
            reasons.append(f"{key}: {_short(a)} -> {_short(b)}")
        else:
            reasons.append(f"{key} changed")
    return reasons


def explain(project: Project, task: str, old: dict[str, Any] | None) -> list[str]:
    """Why a task runs: ``old`` is its stamp as it was when the build started."""
    stage, _, name = task.partition(":")
    if stage in STAGES and name in project.packages:
        new, key = project.stage_inputs(name, stage), project.key(name, stage)
    elif task == "rootfs":
        new, key = project.rootfs_inputs, project.rootfs_key
    elif task == "toolchain":
        new, key = None, project.toolchain_key
    else:
        return ["always runs"]
    if old is None:
        return [NO_STAMP]
    if old.get("key") == key:
        return ["stamp is current but its output is missing (or the run was forced)"]
    if new is None:
        return ["the toolchain identity changed"]
    inputs = old.get("inputs")
    if not isinstance(inputs, dict):
        return ["its inputs changed (the old stamp does not list them)"]
    return diff_inputs(name or None, inputs, new) or ["its key changed"]


def snapshot(project: Project) -> dict[str, dict[str, Any] | None]:
    """The stamps a stage may delete before any task starts: the rootfs stamp (every stage
    removes it) and the toolchain's. A package's own stamps are read when its first task
    starts (``package_stamps``): a no-op reads none of them a second time."""
    return {
        "rootfs": read_stamp(project.rootfs_stamp),
        "toolchain": read_stamp(project.toolchain_stamp),
    }


def package_stamps(project: Project, name: str) -> dict[str, dict[str, Any] | None]:
    """Every stamp of one package as it is now: a stage deletes its own and its later stages'
    stamps (never another package's) before it works, so this runs before its first task."""
    return {f"{stage}:{name}": read_stamp(project.stamp_path(name, stage)) for stage in STAGES}


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BuildReporter(ConsoleReporter):
    """doit's console reporter, then the build report (``DOIT_CONFIG["reporter"]``)."""

    desc = "console output, then what ran, how long and why (build/report.json)"

    def __init__(
        self, outstream: Any, options: dict[str, Any], project: Project | None = None
    ) -> None:
        super().__init__(outstream, options)
        if project is not None:
            _lock_build(project)
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.records: dict[str, TaskRecord] = {}
        self.uptodate: list[str] = []  # cache hits, by name: thousands on a large no-op
        self.old: dict[str, dict[str, Any] | None] = {}
        self.snapped: set[str] = set()  # packages whose stamps are in self.old
        self.project = project
        self.problem: str | None = None
        self.printed: list[str] = []  # what a no-op prints, for its record (fwbuild.noop)
        self.selected: list[tuple[str, bool]] = []
        self.nothing_ran = False

    # --- doit's calls --------------------------------------------------------------------------
    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        super().initialize(tasks, selected_tasks)
        if self.project is not None:  # before any task is checked (fwbuild.tasks)
            self.project.asked_for.update(selected_tasks or ())
        self.selected = [(n, bool(tasks[n].actions)) for n in selected_tasks or () if n in tasks]
        self._guard(self._load)

    def write(self, text: str) -> None:
        self.printed.append(text)
        super().write(text)

    def execute_task(self, task: Any) -> None:
        super().execute_task(task)
        if task.actions:  # no no-op, and the build's own work is not a no-op's input
            from fwbuild import noop

            noop.stop()
        if task.actions and not task.name.startswith("_"):
            self._guard(lambda: self._start(task))

    def add_success(self, task: Any) -> None:
        super().add_success(task)
        if task.actions:  # a group or alias task (no actions) runs nothing of its own
            self._guard(lambda: self._end(task, "ran"))

    def add_failure(self, task: Any, fail: Any) -> None:
        super().add_failure(task, fail)
        message = str(getattr(fail, "message", fail))
        log = getattr(fail, "log", None)  # set by fwbuild.actions.guarded: the failure's log
        self._guard(lambda: self._end(task, "failed", message, log))

    def skip_uptodate(self, task: Any) -> None:
        super().skip_uptodate(task)
        if task.actions and not task.name.startswith("_"):
            self.uptodate.append(task.name)  # a record is made only if a report is written

    def skip_ignore(self, task: Any) -> None:
        super().skip_ignore(task)
        self._guard(lambda: self._mark(task.name, "ignored"))

    def complete_run(self) -> None:
        super().complete_run()
        printed = "".join(self.printed)
        self._guard(self._finish)
        if self.problem:
            self.write(f"report: not written: {self.problem}\n")
        self.outstream.flush()
        self._guard(lambda: self._keep_noop(printed))

    def _keep_noop(self, printed: str) -> None:
        """Let the next run with the same inputs skip the evaluation (fwbuild.noop)."""
        from fwbuild import noop

        project = self.project
        if project is None or not self.nothing_ran or self.problem or self.failures:
            noop.finish(False, {})
            return
        noop.finish(
            True,
            {
                "build": str(project.board.paths.build),
                "paths": {
                    k: str(getattr(project.board.paths, k)) for k in ("build", "rootfs", "output")
                },
                "report": str(project.report_path),
                "lines": printed.splitlines(),
                "uptodate": len(self.uptodate),
                "selected": self.selected,
                "config": doit_settings(project),
            },
        )

    # --- the report ------------------------------------------------------------------------
    def _guard(self, func: Any) -> None:
        try:
            func()
        except Exception as exc:  # the report must never break or hide a build's result
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"

    def _load(self) -> None:
        if self.project is not None:
            self.old = snapshot(self.project)

    def _record(self, name: str) -> TaskRecord:
        if name not in self.records:
            stage, _, package = name.partition(":")
            self.records[name] = TaskRecord(name, package or None, stage)
        return self.records[name]

    def _mark(self, name: str, result: str) -> None:
        self._record(name).result = result

    def _start(self, task: Any) -> None:
        record = self._record(task.name)
        record._t0 = time.monotonic()
        record.started = _iso(time.time())
        record.offset = round(record._t0 - self.t0, 3)
        if self.project is not None:
            try:
                package = record.package
                if package in self.project.packages and package not in self.snapped:
                    self.snapped.add(package)
                    self.old.update(package_stamps(self.project, package))
                record.why = explain(self.project, task.name, self.old.get(task.name))
            except Exception as exc:  # e.g. a board file that broke during the build
                record.why = [f"unknown ({type(exc).__name__})"]

    def _end(
        self, task: Any, result: str, message: str | None = None, log: str | None = None
    ) -> None:
        record = self._record(task.name)
        record.result = result
        if result == "ran" and self.project is not None and record.stage in CACHED_STAGES:
            restored = origin(self.project, record.package or "", record.stage)
            if restored is not None:  # the stage's output was restored, not made (fwbuild.cache)
                record.result = FROM_CACHE
                record.why = [f"restored from the build cache {restored}", *record.why]
        if record._t0:
            record.seconds = round(time.monotonic() - record._t0, 3)
        if message is not None:
            lines = message.strip().splitlines()
            record.error = lines[0] if lines else ""
            record.log = log
            project = self.project
            if record.log is None and project and record.package in project.packages:
                stage = BY_NAME.get(record.stage)
                log_file = project.log_path(record.package, record.stage)
                if stage is not None and stage.logged and log_file.is_file():
                    record.log = str(log_file)

    def _finish(self) -> None:
        hits = [n for n in self.uptodate if n not in self.records]
        counts = {k: sum(r.result == k for r in self.records.values()) for k in ("ran", "failed")}
        counts["up-to-date"] = len(hits)
        restored = sum(r.result == FROM_CACHE for r in self.records.values())
        if restored:  # only then: a build without the cache keeps the report's shape
            counts[FROM_CACHE] = restored
        if counts["ran"] or counts["failed"] or restored or self.runtime_errors:
            for name in hits:
                self._mark(name, "up-to-date")
        records = sorted(
            self.records.values(),
            key=lambda r: (r.seconds is None, -(r.seconds or 0.0), r.task),
        )
        total = round(time.monotonic() - self.t0, 3)
        where = ""
        if self.project is not None and _only_pictures(records):
            where = f" (drawing is not a build: {self.project.report_path} is kept)"
        elif (
            self.project is not None
            and not (counts["ran"] or counts["failed"] or restored)
            and not self.runtime_errors
        ):
            # A no-op keeps the last build's report (what graph-build draws): rewriting every
            # task's record cost a no-op more than all its stamps at a thousand packages.
            where = f" (nothing ran: {self.project.report_path} is kept)"
            self.nothing_ran = counts["up-to-date"] == len(self.uptodate)
        elif self.project is not None:
            path = self.project.report_path
            data = {
                "board": self.project.board.name,
                "started": _iso(self.wall0),
                "seconds": total,
                "result": "failed" if counts["failed"] or self.runtime_errors else "ok",
                "counts": counts,
                "tasks": [
                    {k: v for k, v in asdict(r).items() if not k.startswith("_")} for r in records
                ],
                "sources": _sources(self.project),
            }
            atomic_write(path, json.dumps(data, indent=1) + "\n")
            where = f" ({path})"
        shown = [r for r in records if r.result in {"ran", "failed", FROM_CACHE}]
        cached = f", {restored} from cache" if restored else ""
        self.write(
            f"report: {counts['ran']} ran, {counts['failed']} failed, "
            f"{counts['up-to-date']} up to date{cached}, {total:.1f} s{where}\n"
        )
        if shown:
            width = max(len("task"), *(len(r.task) for r in shown))
            rw = max(7, *(len(r.result) for r in shown))  # "from cache" widens the column
            self.write(f"  {'task':<{width}}  {'result':<{rw}} start s  seconds  why\n")
            for r in shown:
                why = "; ".join(r.why) or "-"
                if len(why) > _WHY_WIDTH:
                    why = why[: _WHY_WIDTH - 1] + "…"
                start = f"{r.offset:7.1f}" if r.offset is not None else "      -"
                secs = f"{r.seconds:7.2f}" if r.seconds is not None else "      -"
                self.write(f"  {r.task:<{width}}  {r.result:<{rw}} {start}  {secs}  {why}\n")
        for r in records:  # last: what a CI log's reader needs first
            if r.result == "failed":
                error = r.error or "see above"
                if len(error) > _ERROR_WIDTH:  # the head and the tail ("… exit code 2 in …")
                    error = error[: _ERROR_WIDTH // 2] + " … " + error[-_ERROR_WIDTH // 2 :]
                package = f" (package {r.package})" if r.package else ""
                if r.log:
                    self.write(
                        f"{r.task} failed: {error}\nFAILED {r.task}{package}; log: {r.log}\n"
                    )
                else:
                    self.write(f"FAILED {r.task}{package}: {error}\n")


def _only_pictures(records: list[TaskRecord]) -> bool:
    """Whether only picture tasks (fwbuild.graphs) ran: they keep the last build's report, which
    is what ``doit graph-build`` draws."""
    worked = [
        r.task.partition(":")[0].lstrip("_") for r in records if r.result in {"ran", "failed"}
    ]
    if not worked:
        return False  # (a no-op need not import fwbuild.graphs)
    from fwbuild.graphs import PICTURE_TASKS

    # `doit info:<pkg>` (fwbuild.info) only prints: it is not a build either
    return all(t in (*PICTURE_TASKS, "info") for t in worked)


def _lock_build(project: Project) -> None:
    """One build per build directory (fwbuild.lock): doit makes the reporter in its main process
    only for commands that run tasks, before the first task, so this is where the lock is taken;
    ``doit list`` and ``doit info`` never wait behind a running build."""
    from fwbuild.lock import lock_build_dir_or_exit

    lock_build_dir_or_exit(project.board.paths.build)


def doit_settings(project: Project) -> dict[str, Any]:
    """``DOIT_CONFIG`` but the reporter: what the no-op shortcut gives doit too (fwbuild.noop)."""
    return {
        "default_tasks": ["rootfs"],
        "dep_file": str(project.board.paths.build / ".doit.db"),
        "backend": "json",
        "verbosity": 1,
    }


def build_reporter(project: Project) -> type[BuildReporter]:
    """The reporter class for ``DOIT_CONFIG`` (a class: doit makes one per run), bound to the
    project whose tasks it reports; nothing global is set."""

    class ProjectReporter(BuildReporter):
        def __init__(self, outstream: Any, options: dict[str, Any]) -> None:
            super().__init__(outstream, options, project)

    return ProjectReporter
