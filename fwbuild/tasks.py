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
from typing import TYPE_CHECKING, Any

from doit.task import DelayedLoader

from fwbuild.actions import guarded
from fwbuild.cache import CACHED_STAGES, covers
from fwbuild.errors import BuildError
from fwbuild.project import Project
from fwbuild.stages import BY_NAME, STAGES, TABLE, Stage
from fwbuild.stamps import stamp_matches, write_stamp

if TYPE_CHECKING:
    from fwbuild.trees import Guard

Creators = dict[str, Callable[[], Any]]  # doit task creators by "task_<name>"


def run_stage(project: Project, name: str, stage: str) -> Any:
    if stage not in CACHED_STAGES and f"{stage}:{name}" in project.asked_for:
        # asked for by name: the stages before it that the build cache let doit skip run
        # first (its tree needs theirs); a restored install stays current
        return guarded(project, lambda: BY_NAME[stage].ensure(project, name))
    return guarded(project, lambda: BY_NAME[stage].run(project, name))


def stage_uptodate(project: Project, name: str, stage: str) -> bool:
    """fetch … build are not needed when the package's install comes from the build cache,
    unless that very stage is asked for by name (``doit patch:linux``: the tree is wanted)."""
    if BY_NAME[stage].done(project, name):
        return True
    return f"{stage}:{name}" not in project.asked_for and covers(project, name, stage)


def run_rootfs(project: Project) -> Any:
    from fwbuild.rootfs import assemble

    return guarded(
        project,
        lambda: print(f"rootfs: {len(assemble(project))} entries in {project.board.paths.rootfs}"),
    )


def rootfs_uptodate(project: Project) -> bool:
    """Here rather than in fwbuild.rootfs: a no-op need not import what assembles a rootfs."""
    paths = project.board.paths
    return (
        paths.rootfs.is_dir()
        and paths.output.is_dir()
        and stamp_matches(project.rootfs_stamp, project.rootfs_key)
        and _budget_holds(project)  # a lowered budget checks the image again
    )


def _budget_holds(project: Project) -> bool:
    if not project.board.has_budget:
        return True  # (and fwbuild.sizes is not imported by a no-op)
    from fwbuild import sizes

    return sizes.budget_holds(project)


def run_source(project: Project) -> Any:
    """Fetch what the build cache let ``fetch:<pkg>`` skip: ``doit source`` is for an offline
    build later, which may not find the cache (fwbuild.cache)."""

    def fetch_all() -> None:
        for name in project.packages:
            BY_NAME["fetch"].ensure(project, name)

    return guarded(project, fetch_all)


def source_uptodate(project: Project) -> bool:
    return all(BY_NAME["fetch"].done(project, n) for n in project.packages)


def run_toolchain(project: Project) -> Any:
    from fwbuild.errors import ConfigError

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
        write_stamp(project.toolchain_stamp, project.toolchain_key)

    return guarded(project, check)


def toolchain_uptodate(project: Project) -> bool:
    return stamp_matches(project.toolchain_stamp, project.toolchain_key) and (
        "target" not in project.used_toolchains() or project.toolchain.tool("cc").exists()
    )


def run_pin(project: Project, name: str) -> Any:
    from fwbuild.fetch import RemoteFile, download_for_pin
    from fwbuild.stages import fetch_settings

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

    return guarded(project, pin)


def run_extra(project: Project, name: str, task: str) -> Any:
    from fwbuild.stages import do_extra

    return guarded(project, lambda: do_extra(project, name, task))


def run_dirclean(project: Project, name: str) -> Any:
    from fwbuild.trees import guard_for, remove_tree

    def clean() -> None:
        setting = f"the work directory of {name} (under FWBUILD_BUILD_DIR)"
        remove_tree(project.workdir(name), setting=setting, guard=guard_for(project))
        project.rootfs_stamp.unlink(missing_ok=True)

    return guarded(project, clean)


def run_legal_info(project: Project) -> Any:
    from fwbuild.legal import write_legal_info

    return guarded(
        project, lambda: print(f"legal-info: licence bundle in {write_legal_info(project)}")
    )


def _fixed_signature(*funcs: Callable[..., Any]) -> None:
    """doit asks ``inspect.signature`` of every ``uptodate`` callable of every task on each run
    (to pass ``task``/``values``), a tenth of a millisecond each; a signature stored on the
    function is returned as it is."""
    import inspect

    for func in funcs:
        func.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]


def make_tasks(project: Project) -> dict[str, Callable[[], Any]]:
    """doit task creators for a dodo module (``globals().update(make_tasks(...))``).

    The actions get the project itself (doit's worker processes are forked with the tasks, so
    nothing is pickled), not a name to look it up by."""
    _fixed_signature(stage_uptodate, rootfs_uptodate, toolchain_uptodate, source_uptodate)
    tasks: Creators = {
        **_stage_tasks(project),
        **_extra_tasks(project),
        **_alias_tasks(project),
        **_board_tasks(project),
        "task_pin": _pin_task(project),
    }
    if project.board.has_budget:
        from fwbuild.sizes import read_budget  # a bad budget stops the build before it starts

        read_budget(project)
    creators: dict[str, Any] = {
        name.removeprefix("task_"): TaskCreator(make) for name, make in tasks.items()
    }
    creators["dirclean"] = LaterTaskCreator(_dirclean_task(project))
    for basename, (module, function, creator) in LATER_TASKS.items():
        creators[basename] = LaterTaskCreator(_from_module(project, module, function, creator))
    # info:<pkg> (fwbuild.info): its creator cannot be called "info", a doit command's name
    creators["package-info"] = InfoTaskCreator(
        _from_module(project, "fwbuild.info", "info_tasks", "task_package_info")
    )
    return creators


def _stage_tasks(project: Project) -> Creators:
    """``fetch:<pkg>`` … ``install:<pkg>``: one group per stage of the table (fwbuild.stages)."""
    names = list(project.packages)

    def stage_group(stage: Stage) -> Callable[[], Iterator[dict[str, Any]]]:
        def gen() -> Iterator[dict[str, Any]]:
            yield {"basename": stage.name, "name": None, "doc": stage.doc + " (per package)"}
            for name in names:
                yield {
                    "basename": stage.name,
                    "name": name,
                    "doc": f"{stage.doc}: {name}",
                    "actions": [(run_stage, [project, name, stage.name])],
                    "uptodate": [(stage_uptodate, [project, name, stage.name])],
                    "task_dep": stage.task_deps(project, name),
                    "clean": [(_unstamp, [project, name, stage.name])],
                    "verbosity": stage.verbosity,
                }

        gen.__name__ = f"task_{stage.name}"
        return gen

    return {f"task_{stage.name}": stage_group(stage) for stage in TABLE}


def _extra_tasks(project: Project) -> Creators:
    """Tasks recipes add (``extra_tasks``, e.g. menuconfig), one group per task name."""
    extra: dict[str, list[tuple[str, str]]] = {}
    for name, pkg in project.packages.items():
        for task, (_, doc) in pkg.extra_tasks.items():
            extra.setdefault(task, []).append((name, doc))
    tasks: Creators = {}
    for task, members in extra.items():

        def task_extra(task: str = task, members: list[tuple[str, str]] = members) -> Any:
            yield {"basename": task, "name": None, "doc": members[0][1]}
            for name, doc in members:
                yield {
                    "basename": task,
                    "name": name,
                    "doc": doc,
                    "actions": [(run_extra, [project, name, task])],
                    "task_dep": [f"configure:{name}"],
                    "uptodate": [False],
                    "verbosity": 2,
                }

        tasks[f"task_{task}"] = task_extra
    return tasks


def _alias_tasks(project: Project) -> Creators:
    """The board's ``[tasks.<alias>]``: names for a list of tasks, each checked to exist."""
    names = list(project.packages)
    known = {f"{s}:{n}" for s in STAGES for n in names} | {"rootfs", "source", "toolchain"}
    tasks: Creators = {}
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
    return tasks


def _board_tasks(project: Project) -> Creators:
    """The tasks of the whole board: legal-info, rootfs, source and toolchain."""
    names = list(project.packages)

    def task_legal_info() -> dict[str, Any]:
        """write $OUTPUT/legal-info: every package's licence files, patches and manifest.csv"""
        return {
            "basename": "legal-info",
            "actions": [(run_legal_info, [project])],
            "task_dep": [f"patch:{n}" for n in names],
            "uptodate": [False],  # cheap, and the rootfs stage replaces the output directory
            "verbosity": 2,
        }

    def task_rootfs() -> dict[str, Any]:
        """build every package and merge them with the board's files into $ROOTFS_DIR"""
        return {
            "actions": [(run_rootfs, [project])],
            "uptodate": [(rootfs_uptodate, [project])],
            "task_dep": [f"install:{n}" for n in names],
            "verbosity": 2,
        }

    def task_source() -> dict[str, Any]:
        """download every source and patch into the download directory, for offline builds"""
        return {
            "actions": [(run_source, [project])],
            "uptodate": [(source_uptodate, [project])],
            "task_dep": [f"fetch:{n}" for n in names],
        }

    def task_toolchain() -> dict[str, Any]:
        """check the target cross toolchain and build its libc cache once per machine"""
        return {
            "actions": [(run_toolchain, [project])],
            "uptodate": [(toolchain_uptodate, [project])],
            "verbosity": 2,
        }

    return {
        "task_legal_info": task_legal_info,
        "task_rootfs": task_rootfs,
        "task_source": task_source,
        "task_toolchain": task_toolchain,
    }


def _pin_task(project: Project) -> Callable[[], Iterator[dict[str, Any]]]:
    """``pin:<pkg>``, for the packages with files that have no digest yet."""
    names = list(project.packages)

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
                    "actions": [(run_pin, [project, name])],
                    "uptodate": [False],
                    "verbosity": 2,
                }

    return task_pin


def _dirclean_task(project: Project) -> Callable[[], Iterator[dict[str, Any]]]:
    """``dirclean:<pkg>``: forget a package's work tree and stamps."""
    names = list(project.packages)

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
                "actions": [(run_dirclean, [project, name])],
                "uptodate": [False],
            }

    return task_dirclean


# Tasks made only when asked for (and by `doit list`), from modules no build imports otherwise:
# doit task name -> (module, its function returning task creators, the creator's name there).
LATER_TASKS = {
    "_graph-depends": ("fwbuild.graphs", "graph_tasks", "task_graph_depends_all"),
    "graph-depends": ("fwbuild.graphs", "graph_tasks", "task_graph_depends"),
    "graph-build": ("fwbuild.graphs", "graph_tasks", "task_graph_build"),
    "graph-size": ("fwbuild.graphs", "graph_tasks", "task_graph_size"),
    "cve-check": ("fwbuild.cve", "cve_tasks", "task_cve_check"),
    "source-check": ("fwbuild.sourcecheck", "source_check_tasks", "task_source_check"),
}


def _from_module(project: Project, module: str, function: str, creator: str) -> Callable[[], Any]:
    def make() -> Any:
        import importlib

        found = getattr(importlib.import_module(module), function)(project)[creator]
        created = found()
        if isinstance(created, dict) and "doc" not in created and found.__doc__:
            created["doc"] = found.__doc__
        return created

    return make


class TaskCreator:
    """A doit task creator (doit accepts any object with ``create_doit_tasks``).

    doit reads each creator's source to learn its line number, on every run, no-op ones
    included: tokenizing a closure costs a few milliseconds, a longer method a fifth of one.
    So every ``create_doit_tasks`` here is two lines that hand over to ``_created``.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def create_doit_tasks(self) -> Any:
        return self._created()

    def _created(self) -> Any:
        created = self.make()
        if isinstance(created, dict) and "doc" not in created and self.make.__doc__:
            created["doc"] = self.make.__doc__
        return created


class LaterTaskCreator(TaskCreator):
    """A task creator doit calls only when one of its tasks is asked for, or for ``doit list``
    (doit's delayed creation): a no-op build neither imports what these tasks need nor holds a
    doit Task per package for them (``dirclean:<pkg>``, ``graph-depends:<pkg>``)."""

    def create_doit_tasks(self) -> Any:
        return self._created()

    create_doit_tasks.doit_create_after = DelayedLoader(create_doit_tasks)  # type: ignore[attr-defined]

    def _created(self) -> Any:
        try:
            return super()._created()
        except BuildError as exc:  # raised inside doit's run loop: doit's way, no traceback
            from doit.exceptions import InvalidTask

            raise InvalidTask(f"fwbuild: {exc}") from None


class InfoTaskCreator(LaterTaskCreator):
    """``info:<pkg>``: made when asked for, under the basename ``info`` (``creates``), which
    doit allows for tasks though not for their creator."""

    def create_doit_tasks(self) -> Any:
        return self._created()

    # what `doit list` shows for it (a docstring would lengthen the method doit tokenizes)
    create_doit_tasks.__doc__ = (
        "print what a recipe declares: info:<pkg> (sources, patches, variants, files, keys)"
    )
    create_doit_tasks.doit_create_after = DelayedLoader(create_doit_tasks, creates=["info"])  # type: ignore[attr-defined]


def _unstamp(project: Project, name: str, stage: str) -> None:
    project.stamp_path(name, stage).unlink(missing_ok=True)


def doit_config(project: Project, guard: Guard) -> dict[str, Any]:
    from fwbuild.report import build_reporter, doit_settings
    from fwbuild.trees import claim_build_dir

    # Creates or adopts the build directory (its marker makes the work trees the build's); its
    # name and the output trees' were refused before (fwbuild.trees.check_names, with ``guard``).
    claim_build_dir(project.board.paths.build, guard)
    return {**doit_settings(project), "reporter": build_reporter(project)}  # fwbuild.report
