"""Turning a project into doit tasks.

    fetch:<pkg>  patch:<pkg>  configure:<pkg>  build:<pkg>  install:<pkg>   one per package
    rootfs       everything, merged into $ROOTFS_DIR (the default task)
    source       every download, for an offline build later
    toolchain    check the cross toolchain and warm its caches
    pin:<pkg>    download files that have no digest yet and record their digests
    dirclean:<pkg>  forget a package's work tree and stamps

A stage is up to date when its stamp holds the stage's key (see ``fwbuild.project``). The tasks
carry no ``file_dep``: the keys already cover every input, and doit never has to stat thousands
of source files to find that nothing changed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fwbuild.cache import covers
from fwbuild.errors import BuildError
from fwbuild.project import Project
from fwbuild.stages import BY_NAME, STAGES, TABLE, Stage
from fwbuild.stamps import stamp_matches, write_stamp

_PROJECTS: dict[str, Project] = {}


def project_key(board_file: Path, project_dir: Path | None) -> str:
    """What identifies a loaded project in task arguments (plain strings pickle everywhere)."""
    return f"{board_file.resolve()}::{project_dir.resolve() if project_dir else ''}"


def project_for(key: str) -> Project:
    if key not in _PROJECTS:
        board, _, project = key.partition("::")
        _PROJECTS[key] = Project.load(Path(board), Path(project) if project else None)
    return _PROJECTS[key]


def _guarded(func: Callable[[], Any]) -> Any:
    """Run an action; a BuildError becomes doit's TaskFailed with just our message."""
    from doit.exceptions import TaskFailed

    try:
        func()
    except BuildError as exc:
        return TaskFailed(str(exc))
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        # A disk that fills up or turns read-only under any stage: named, not a traceback.
        from fwbuild.steps import storage_error

        trees = [p.board.paths for p in _PROJECTS.values()]
        where = [d for t in trees for d in (t.build, t.rootfs, t.output)]
        error = storage_error(exc, writing=False, candidates=where)
        if error is None:
            raise
        return TaskFailed(str(error))
    return None


def run_stage(board_file: str, name: str, stage: str) -> Any:
    project = project_for(board_file)
    return _guarded(lambda: BY_NAME[stage].run(project, name))


def stage_uptodate(board_file: str, name: str, stage: str) -> bool:
    project = project_for(board_file)
    # fetch … build are not needed when the package's install comes from the build cache
    return BY_NAME[stage].done(project, name) or covers(project, name, stage)


def run_rootfs(board_file: str) -> Any:
    from fwbuild.rootfs import assemble

    project = project_for(board_file)
    return _guarded(
        lambda: print(f"rootfs: {len(assemble(project))} entries in {project.board.paths.rootfs}")
    )


def rootfs_uptodate(board_file: str) -> bool:
    from fwbuild.rootfs import rootfs_uptodate as check

    return check(project_for(board_file))


def run_source(board_file: str) -> Any:
    """Fetch what the build cache let ``fetch:<pkg>`` skip: ``doit source`` is for an offline
    build later, which may not find the cache (fwbuild.cache)."""
    from fwbuild.cache import ensure_stages

    project = project_for(board_file)
    return _guarded(lambda: [ensure_stages(project, n, "fetch") for n in project.packages])


def source_uptodate(board_file: str) -> bool:
    project = project_for(board_file)
    return all(BY_NAME["fetch"].done(project, n) for n in project.packages)


def toolchain_key(project: Project) -> str:
    from fwbuild.stamps import digest_json

    return digest_json({n: t.identity() for n, t in sorted(project.used_toolchains().items())})


def toolchain_stamp(project: Project) -> Path:
    return project.board.paths.build / "stamps" / "toolchain.json"


def run_toolchain(board_file: str) -> Any:
    from fwbuild.errors import ConfigError

    project = project_for(board_file)

    def check() -> None:
        problems = [
            f"{name}: {p.what} (fix: {p.fix})"
            for name, toolchain in project.used_toolchains().items()
            for p in toolchain.problems()
        ]
        if problems:  # all of them at once, before any long build starts
            raise ConfigError("toolchains are not usable: " + "; ".join(problems))
        for toolchain in project.used_toolchains().values():
            print(toolchain.warm_up())
        write_stamp(toolchain_stamp(project), toolchain_key(project))

    return _guarded(check)


def toolchain_uptodate(board_file: str) -> bool:
    project = project_for(board_file)
    return stamp_matches(toolchain_stamp(project), toolchain_key(project)) and (
        "target" not in project.used_toolchains() or project.toolchain.tool("cc").exists()
    )


def run_pin(board_file: str, name: str) -> Any:
    from fwbuild.fetch import RemoteFile, download_for_pin
    from fwbuild.stages import fetch_settings

    project = project_for(board_file)
    pkg = project.packages[name]

    def pin() -> None:
        settings = fetch_settings(project)
        for source in [*pkg.sources, *pkg.patches]:
            if source.digests():
                continue  # the recipe pins it itself
            remote = RemoteFile(source.filename, source.urls, {})
            path, digests = download_for_pin(remote, settings, package=name, log=sys.stderr)
            old = project.pins.digests(source.filename)
            project.pins.record(
                source.filename,
                {**digests, "size": path.stat().st_size, "pinned_by": "doit pin:" + name},
            )
            change = "" if not old or old == digests else f" (was {old})"
            print(
                f"{name}: pinned {source.filename} sha256 {digests['sha256']}{change} in "
                f"{project.pins.path}; review and commit it"
            )

    return _guarded(pin)


def run_extra(board_file: str, name: str, task: str) -> Any:
    from fwbuild.stages import do_extra

    project = project_for(board_file)
    return _guarded(lambda: do_extra(project, name, task))


def run_dirclean(board_file: str, name: str) -> Any:
    from fwbuild.trees import guard_for, remove_tree

    project = project_for(board_file)

    def clean() -> None:
        setting = f"the work directory of {name} (under FWBUILD_BUILD_DIR)"
        remove_tree(project.workdir(name), setting=setting, guard=guard_for(project))
        project.rootfs_stamp.unlink(missing_ok=True)

    return _guarded(clean)


def run_legal_info(board_file: str) -> Any:
    from fwbuild.legal import write_legal_info

    project = project_for(board_file)
    return _guarded(lambda: print(f"legal-info: licence bundle in {write_legal_info(project)}"))


def _fixed_signature(*funcs: Callable[..., Any]) -> None:
    """doit asks ``inspect.signature`` of every ``uptodate`` callable of every task on each run
    (to pass ``task``/``values``), a tenth of a millisecond each; a signature stored on the
    function is returned as it is."""
    import inspect

    for func in funcs:
        func.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]


def make_tasks(board_file: Path, project_dir: Path | None = None) -> dict[str, Callable[[], Any]]:
    """doit task creators for a dodo module (``globals().update(make_tasks(...))``)."""
    _fixed_signature(stage_uptodate, rootfs_uptodate, toolchain_uptodate, source_uptodate)
    key = project_key(board_file, project_dir)
    project = project_for(key)
    names = list(project.packages)
    tasks: dict[str, Callable[[], Any]] = {}

    def stage_group(stage: Stage) -> Callable[[], Iterator[dict[str, Any]]]:
        def gen() -> Iterator[dict[str, Any]]:
            yield {"basename": stage.name, "name": None, "doc": stage.doc + " (per package)"}
            for name in names:
                yield {
                    "basename": stage.name,
                    "name": name,
                    "doc": f"{stage.doc}: {name}",
                    "actions": [(run_stage, [key, name, stage.name])],
                    "uptodate": [(stage_uptodate, [key, name, stage.name])],
                    "task_dep": stage.task_deps(project, name),
                    "clean": [(_unstamp, [key, name, stage.name])],
                    "verbosity": stage.verbosity,
                }

        gen.__name__ = f"task_{stage.name}"
        return gen

    for stage in TABLE:
        tasks[f"task_{stage.name}"] = stage_group(stage)

    def task_rootfs() -> dict[str, Any]:
        """build every package and merge them with the board's files into $ROOTFS_DIR"""
        return {
            "actions": [(run_rootfs, [key])],
            "uptodate": [(rootfs_uptodate, [key])],
            "task_dep": [f"install:{n}" for n in names],
            "verbosity": 2,
        }

    def task_source() -> dict[str, Any]:
        """download every source and patch into the download directory, for offline builds"""
        return {
            "actions": [(run_source, [key])],
            "uptodate": [(source_uptodate, [key])],
            "task_dep": [f"fetch:{n}" for n in names],
        }

    def task_toolchain() -> dict[str, Any]:
        """check the target cross toolchain and build its libc cache once per machine"""
        return {
            "actions": [(run_toolchain, [key])],
            "uptodate": [(toolchain_uptodate, [key])],
            "verbosity": 2,
        }

    def task_pin() -> Iterator[dict[str, Any]]:
        yield {
            "basename": "pin",
            "name": None,
            "doc": "download files that have no published digest and record theirs in the lock",
        }
        for name in names:
            pkg = project.packages[name]
            if any(not s.digests() for s in [*pkg.sources, *pkg.patches]):
                yield {
                    "basename": "pin",
                    "name": name,
                    "actions": [(run_pin, [key, name])],
                    "uptodate": [False],
                    "verbosity": 2,
                }

    def task_dirclean() -> Iterator[dict[str, Any]]:
        yield {
            "basename": "dirclean",
            "name": None,
            "doc": "remove a package's work tree and stamps so it is rebuilt from its sources",
        }
        for name in names:
            yield {
                "basename": "dirclean",
                "name": name,
                "doc": f"remove the work tree and stamps of {name}",
                "actions": [(run_dirclean, [key, name])],
                "uptodate": [False],
            }

    extra: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        for task, (_, doc) in project.packages[name].extra_tasks.items():
            extra.setdefault(task, []).append((name, doc))
    for task, members in extra.items():

        def task_extra(task: str = task, members: list[tuple[str, str]] = members) -> Any:
            yield {"basename": task, "name": None, "doc": members[0][1]}
            for name, doc in members:
                yield {
                    "basename": task,
                    "name": name,
                    "doc": doc,
                    "actions": [(run_extra, [key, name, task])],
                    "task_dep": [f"configure:{name}"],
                    "uptodate": [False],
                    "verbosity": 2,
                }

        tasks[f"task_{task}"] = task_extra

    known = {f"{s}:{n}" for s in STAGES for n in names} | {"rootfs", "source", "toolchain"}
    for alias, spec in project.board.aliases.items():
        unknown = [t for t in spec["run"] if t not in known]
        if unknown:
            from fwbuild.errors import ConfigError

            raise ConfigError(
                f"{project.board.file}: [tasks.{alias}] runs {', '.join(unknown)}, which this "
                f"board does not have (its packages: {', '.join(names)})"
            )

        def task_alias(spec: dict[str, Any] = spec) -> dict[str, Any]:
            return {"actions": None, "task_dep": list(spec["run"]), "doc": spec["doc"]}

        tasks[f"task_{alias}"] = task_alias

    def task_legal_info() -> dict[str, Any]:
        """write $OUTPUT/legal-info: every package's licence files, patches and manifest.csv"""
        return {
            "basename": "legal-info",
            "actions": [(run_legal_info, [key])],
            "task_dep": [f"patch:{n}" for n in names],
            "uptodate": [False],  # cheap, and the rootfs stage replaces the output directory
            "verbosity": 2,
        }

    tasks["task_legal_info"] = task_legal_info
    tasks.update(
        task_rootfs=task_rootfs,
        task_source=task_source,
        task_toolchain=task_toolchain,
        task_pin=task_pin,
        task_dirclean=task_dirclean,
    )
    from fwbuild.graphs import graph_tasks  # graph-depends, graph-build, graph-size

    tasks.update(graph_tasks(key, project))
    from fwbuild.cve import cve_tasks  # cve-check

    tasks.update(cve_tasks(key, project))
    from fwbuild.sourcecheck import source_check_tasks  # source-check

    tasks.update(source_check_tasks(key))
    return {name.removeprefix("task_"): TaskCreator(make) for name, make in tasks.items()}


class TaskCreator:
    """A doit task creator (doit accepts any object with ``create_doit_tasks``).

    doit reads each task *function*'s source to learn its line number, which for closures costs
    a few milliseconds apiece on every run, no-op ones included; this one-line method is cheap.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def create_doit_tasks(self) -> Any:
        created = self.make()
        if isinstance(created, dict) and "doc" not in created and self.make.__doc__:
            created["doc"] = self.make.__doc__
        return created


def _unstamp(board_file: str, name: str, stage: str) -> None:
    project = project_for(board_file)
    project.stamp_path(name, stage).unlink(missing_ok=True)


def doit_config(board_file: Path, project_dir: Path | None = None) -> dict[str, Any]:
    from fwbuild.report import build_reporter
    from fwbuild.trees import check_project

    project = project_for(project_key(board_file, project_dir))
    build = project.board.paths.build
    # Creates or adopts the build directory (its marker makes the work trees the build's) and
    # refuses, by name, output directories the build may never replace (fwbuild.trees).
    check_project(project)
    return {
        "default_tasks": ["rootfs"],
        "dep_file": str(build / ".doit.db"),
        "backend": "json",
        "reporter": build_reporter(project_key(board_file, project_dir)),  # fwbuild.report
        "verbosity": 1,
    }
