"""The five stages of a package, in one table: what each is, what defines it, what it does.

    fetch -> patch -> configure -> build -> install

Each ``Stage`` says its name and doc (the doit task's), its own *inputs* (what, besides the
stage before it, defines its output: the key of ``fwbuild.project`` is the digest of these),
its *work*, its *outputs* (directories that must exist for a current stamp to count) and the
tasks it needs besides the stage before it. Keys (``Project.stage_inputs``), task generation
(``fwbuild.tasks``), the build report (``fwbuild.report``) and the graphs read this table; a
sixth stage would be one more row.

Every stage runs under the same discipline for crash safety (``Stage.run``):

1. remove its own stamp and the stamps of the package's later stages (so a kill from here on
   leaves nothing that claims to be finished);
2. run the ``before`` hooks, then the work (unless a hook produced the outputs itself), building
   new trees under temporary names and renaming them into place, then the ``after`` hooks;
3. write its stamp (atomically) only after everything succeeded.

doit writes its own database only when it exits, so these stamps, not doit's, are what a build
killed with SIGKILL resumes from.

Hooks (``StageHook``) are the place for code that wraps a stage without being part of it, e.g. a
build cache around ``install``: ``before`` may restore the outputs and answer True (the work is
skipped, the stamp is still written), ``after`` sees the finished outputs. Give them to the
stage's row in ``TABLE``.

This module sits below ``fwbuild.project``: it takes the project as an argument and never
imports it, so the project can compute keys from this table without an import cycle.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fwbuild.cache import HOOK as CACHE_HOOK
from fwbuild.cache import ccache_env, ccache_identity
from fwbuild.codedigest import code_inputs
from fwbuild.codedigest import file_digest as input_digest
from fwbuild.errors import BuildError, ConfigError
from fwbuild.fsutil import atomic_write
from fwbuild.licensing import verify_licenses
from fwbuild.overrides import tree_fingerprint
from fwbuild.recipe import Package, Source, expand_target_files
from fwbuild.stamps import ENGINE_STAMP_VERSION, write_stamp
from fwbuild.steps import Context, clean_env
from fwbuild.toolchain import build_triplet
from fwbuild.trees import copy_tree, guard_for, staged_tree

if TYPE_CHECKING:
    from fwbuild.project import Project

TREE_STATE = "tree-state"  # "pristine" after the patch stage, "configured" once configure ran


class StageHook(Protocol):
    """Code run around a stage's work, inside its crash-safety discipline (see the module doc).

    ``before`` runs after the stage's stamps were removed: return True if it produced the
    stage's outputs itself (the work is then skipped). ``after`` runs once the outputs are in
    place, before the stamp is written; an exception from either fails the stage."""

    def before(self, project: Project, stage: Stage, name: str) -> bool: ...

    def after(self, project: Project, stage: Stage, name: str) -> None: ...


@dataclass(frozen=True)
class Stage:
    name: str
    doc: str
    # what defines the output besides the stage before it (whose key is added by ``inputs``)
    own_inputs: Callable[[Project, Package], dict[str, Any]]
    # the work; may return extra fields for the stamp (``fetch``: which file stood for which)
    work: Callable[[Project, Package], dict[str, Any] | None]
    # directories that must exist for a current stamp to count
    outputs: Callable[[Project, str], tuple[Path, ...]] = lambda project, name: ()
    # tasks needed besides the stage before it (doit ``task_dep``)
    needs: Callable[[Project, str], list[str]] = lambda project, name: []
    logged: bool = False  # the work writes ``logs/<stage>.log`` (the report points at it)
    verbosity: int = 1  # doit's: 2 shows the work's output as it runs
    hooks: tuple[StageHook, ...] = ()

    @property
    def previous(self) -> Stage | None:
        index = NAMES.index(self.name)
        return TABLE[index - 1] if index else None

    @property
    def later(self) -> tuple[Stage, ...]:
        """This stage and the ones after it."""
        return TABLE[NAMES.index(self.name) :]

    @property
    def covers_deps(self) -> bool:
        """Whether the key covers the dependencies' install keys (configure's inputs list them;
        the stages after it hold configure's key)."""
        return NAMES.index(self.name) >= NAMES.index("configure")

    def inputs(self, project: Project, name: str) -> dict[str, Any]:
        """Everything that defines the stage's output: its key is the digest of this."""
        inputs: dict[str, Any] = {"engine": ENGINE_STAMP_VERSION, "stage": self.name}
        if self.previous is not None:
            inputs[self.previous.name] = project.key(name, self.previous.name)
        inputs.update(self.own_inputs(project, project.packages[name]))
        return inputs

    def task_deps(self, project: Project, name: str) -> list[str]:
        before = [f"{self.previous.name}:{name}"] if self.previous else []
        return before + self.needs(project, name)

    def done(self, project: Project, name: str) -> bool:
        """Whether the stamp holds the current key and the outputs exist (doit's uptodate)."""
        from fwbuild.stamps import stamp_matches

        if not stamp_matches(project.stamp_file(name, self.name), project.key(name, self.name)):
            return False
        return all(p.is_dir() for p in self.outputs(project, name))

    def ensure(self, project: Project, name: str, *, keep_restored: bool = True) -> None:
        """Run this stage and the package's earlier ones that are not done: those the build
        cache let doit skip, when the tree is needed after all (legal-info's licence files,
        menuconfig; a refused entry, with ``keep_restored`` False). A restored install stays
        current: the earlier stages remove later stamps as they start, but they never touch the
        staging directory."""
        from fwbuild.cache import origin

        keep: dict[Path, bytes] = {}
        if keep_restored and origin(project, name) is not None:
            for path in (project.stamp_path(name, "install"), project.rootfs_stamp):
                if path.is_file():
                    keep[path] = path.read_bytes()
        for stage in TABLE[: NAMES.index(self.name) + 1]:
            if not stage.done(project, name):
                stage.run(project, name)
        for path, data in keep.items():
            if not path.exists():
                atomic_write(path, data, mode=0o600)

    def run(self, project: Project, name: str) -> None:
        """The work, under the crash-safety discipline of the module doc."""
        started = time.monotonic()
        for stage in self.later:
            project.stamp_path(name, stage.name).unlink(missing_ok=True)
        project.rootfs_stamp.unlink(missing_ok=True)
        if self.logged:
            _start_log(project, name, self.name)
        extra: dict[str, Any] | None = None
        if not any(hook.before(project, self, name) for hook in self.hooks):
            extra = self.work(project, project.packages[name])
        for hook in self.hooks:
            hook.after(project, self, name)
        write_stamp(
            project.stamp_path(name, self.name),
            project.key(name, self.name),
            inputs=project.stage_inputs(name, self.name),
            seconds=round(time.monotonic() - started, 3),
            **(extra or {}),
        )


def fetch_settings(project: Project):  # -> fwbuild.fetch.FetchSettings (imported lazily)
    """The downloader's settings: the board's mirrors and ``[downloads]``, the environment.

    ``[downloads]`` keys: ``timeout`` (seconds without a byte), ``deadline`` (seconds for one
    URL, retries included), ``min_speed`` (bytes/s averaged over 30 s; 0 turns it off),
    ``max_size`` (bytes, or "64M"-style). FWBUILD_DL_TIMEOUT, FWBUILD_DL_DEADLINE and
    FWBUILD_DL_MIN_SPEED override the first three. Checked here with messages of their own:
    a wrong value must not fall back to a default silently.
    """
    import math
    import os

    from fwbuild import fetch

    board = project.board
    section = board.data.get("downloads", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{board.file}: [downloads] must be a table of settings")

    def setting(key: str, env: str, default: float, kind: type[int] | type[float]) -> float:
        raw: object = os.environ.get(env, "").strip()
        where = f"{env} (environment)"
        if not raw:
            if key not in section:
                return default
            raw, where = section[key], f"{board.file}: [downloads] {key}"
        value: float | None = None
        if isinstance(raw, str):
            try:
                value = kind(raw)
            except ValueError:
                value = None
        elif not isinstance(raw, bool) and isinstance(raw, int | float):
            # A float is fine for seconds; a byte rate must be whole ("4096.5" is a typo).
            value = raw if kind is float or isinstance(raw, int) else None
        if kind is int:
            ok = value is not None and value >= 0
            what = "a whole number of bytes per second (0: no minimum)"
        else:
            ok = value is not None and math.isfinite(value) and value > 0
            what = "a number of seconds greater than 0"
        if not ok or value is None:
            raise ConfigError(f"{where} must be {what}, not {raw!r}; fix or remove it")
        return value

    max_size = fetch.DEFAULT_MAX_SIZE
    if "max_size" in section:
        try:
            max_size = fetch.parse_size(section["max_size"])
        except ValueError as exc:
            raise ConfigError(
                f"{board.file}: [downloads] max_size must be a size in bytes such as 1073741824 "
                f'or "1G" (units k, M, G, T); {exc}'
            ) from None
        if max_size == 0:
            raise ConfigError(f"{board.file}: [downloads] max_size must be more than 0 bytes")

    for mirror in (board.primary_mirror, *board.backup_mirrors):
        if mirror:
            fetch.check_url(mirror, where="mirror (FWBUILD_PRIMARY_MIRROR or [mirrors])")

    # A file pinned in the lock file has a known size: a response over it is not that file.
    known_sizes: dict[str, int] = {}
    for pkg in project.packages.values():
        for source in (*pkg.sources, *pkg.patches):
            size = None if source.digests() else project.pins.size(source.filename)
            if size:
                known_sizes[source.filename] = size

    return fetch.FetchSettings(
        dl_dir=board.paths.downloads,
        primary_mirror=board.primary_mirror,
        backup_mirrors=board.backup_mirrors,
        offline=board.offline,
        read_timeout=setting("timeout", "FWBUILD_DL_TIMEOUT", fetch.DEFAULT_STALL_TIMEOUT, float),
        deadline=setting("deadline", "FWBUILD_DL_DEADLINE", fetch.DEFAULT_DEADLINE, float),
        min_speed=int(setting("min_speed", "FWBUILD_DL_MIN_SPEED", fetch.DEFAULT_MIN_SPEED, int)),
        max_size=max_size,
        known_sizes=known_sizes,
    )


def fetch_inputs(project: Project, pkg: Package) -> dict[str, Any]:
    override = project.overrides.packages.get(pkg.name)
    files: list[Any] = []
    for s in [*pkg.active_sources(), *pkg.active_patches()]:
        local = project.overrides.files.get(s.filename)
        digests = local.digests if local else project.remote_digests(s)
        files.append([s.filename, digests, str(local.path) if local else None])
        if s.fallbacks:
            from fwbuild.alternatives import fetch_inputs as alternatives

            files[-1].append(alternatives(project, s))
    if override and override.tarball:
        files[0] = ["override", override.tarball.digests, str(override.tarball.path)]
    return {"files": files}


def do_fetch(project: Project, pkg: Package) -> dict[str, Any]:
    from fwbuild.alternatives import fetch_source, is_pinned, verify_local
    from fwbuild.fetch import RemoteFile, fetch

    name = pkg.name
    override = project.overrides.packages.get(name)
    settings = fetch_settings(project)
    remotes: list[RemoteFile] = []
    alternatives: list[Source] = []  # sources with fallbacks (fwbuild.alternatives)
    for index, source in enumerate([*pkg.active_sources(), *pkg.active_patches()]):
        if index == 0 and override:
            if override.tarball:
                verify_local(project, pkg, override.tarball.path, override.tarball.digests)
            continue  # a srcdir override needs no tarball
        local = project.overrides.files.get(source.filename)
        if local:
            verify_local(project, pkg, local.path, local.digests)
            continue
        if source.fallbacks:
            alternatives.append(source)
            continue
        remotes.append(RemoteFile(source.filename, source.urls, project.remote_digests(source)))
    # Refuse an unpinned file before downloading anything else (a 37 MB kernel, say).
    for source in [s for s in alternatives if not is_pinned(project, s)]:
        fetch_source(project, source, settings, package=name, log=sys.stderr)
    for remote in sorted(remotes, key=lambda r: bool(r.digests)):
        fetch(remote, settings, package=name, log=sys.stderr)
    used: dict[str, str] = {}  # declared file -> the one that stands for it, for the record
    for source in alternatives:  # the recipe's file, or the fallback that stands for it
        used[source.filename] = fetch_source(
            project, source, settings, package=name, log=sys.stderr
        ).filename
    return {"used": used}


def fresh_tree(project: Project, pkg: Package) -> None:
    """Unpack pristine sources and apply the whole patch series, all or nothing, into src/."""
    from fwbuild.patching import PatchFile, apply_series

    name = pkg.name
    work = project.workdir(name)
    guard = guard_for(project)  # work trees are the build's by location (fwbuild.trees)
    setting = f"the source tree of {name} (under FWBUILD_BUILD_DIR)"
    work.mkdir(parents=True, exist_ok=True)
    override = project.overrides.packages.get(name)
    final = project.srcdir(name)
    # made by the copy or the unpacking below, so only cleared here
    with staged_tree(
        final, setting=setting, guard=guard, tmp=work / "src.new", create=False
    ) as tmp:
        local = project.local_source_dir(pkg)
        if override and override.srcdir:
            copy_tree(override.srcdir, tmp)
        elif local is not None:
            copy_tree(local, tmp)
        else:
            sources = pkg.active_sources()
            if not sources:
                tmp.mkdir()
            else:
                tarball = (
                    override.tarball.path
                    if override and override.tarball
                    else project.local_file(sources[0])
                )
                from fwbuild.unpack import extract_tarball  # (not on a no-op's start-up)

                extract_tarball(tarball, tmp, package=name)
        series = [PatchFile(project.local_file(p), p.strip) for p in pkg.active_patches()]
        series += [PatchFile(p, 1) for p in pkg.own_patches]
        apply_series(tmp, series, package=name)
        by_name = {s.filename: s for s in [*pkg.active_sources(), *pkg.active_patches()]}

        def local_file(filename: str) -> Path:
            if filename not in by_name:
                raise ConfigError(
                    f"{pkg.recipe_file}: post_patch asks for {filename!r}, which is not an active "
                    "source or patch of the recipe",
                    package=name,
                )
            return project.local_file(by_name[filename])

        pkg.post_patch(tmp, local_file)
        (work / TREE_STATE).write_text("pristine\n")


def patch_inputs(project: Project, pkg: Package) -> dict[str, Any]:
    override = project.overrides.packages.get(pkg.name)
    return {
        "srcdir": (
            [str(override.srcdir), tree_fingerprint(override.srcdir)]
            if override and override.srcdir
            else None
        ),
        "downloaded": [[p.filename, p.strip] for p in pkg.active_patches()],
        "local_source": project.local_source_digest(pkg),
        "own": [[p.name, input_digest(p)] for p in pkg.own_patches],
    }


def do_patch(project: Project, pkg: Package) -> None:
    fresh_tree(project, pkg)


def make_context(project: Project, pkg: Package, stage: str, staging: Path) -> Context:
    toolchain = project.toolchain_for(pkg)
    srcdir = project.srcdir(pkg.name)
    deps = {d: project.stagingdir(d) for d in project.closure(pkg.name)}
    env = ccache_env(project, pkg, toolchain.env())  # fwbuild.cache: unchanged unless switched on
    # Keep build paths out of the binaries (debug info, __FILE__): reproducible, no host paths.
    prefix_map = f"-ffile-prefix-map={srcdir}=/usr/src/{pkg.label}"
    include = " ".join(f"-I{p / 'usr' / 'include'}" for p in deps.values())
    libs = " ".join(f"-L{p / 'usr' / 'lib'}" for p in deps.values())
    if "CFLAGS" in env:
        env["CFLAGS"] = " ".join(x for x in (env["CFLAGS"], prefix_map, include) if x)
        env["CPPFLAGS"] = include
        env["LDFLAGS"] = " ".join(x for x in (env["LDFLAGS"], libs) if x)
    env["PKG_CONFIG_LIBDIR"] = ":".join(str(p / "usr" / "lib" / "pkgconfig") for p in deps.values())
    env["PKG_CONFIG_PATH"] = ""
    env.setdefault("SOURCE_DATE_EPOCH", "0")
    log = project.log_path(pkg.name, stage)
    return Context(
        package=pkg,
        srcdir=srcdir,
        staging=staging,
        deps_staging=deps,
        toolchain=toolchain,
        build_triplet=build_triplet(),
        jobs=project.board.jobs,
        log_path=log,
        base_env=clean_env(env),
    )


def _start_log(project: Project, name: str, stage: str) -> None:
    log = project.log_path(name, stage)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"# {stage}:{name} key {project.key(name, stage)}\n")


def configure_inputs(project: Project, pkg: Package) -> dict[str, Any]:
    inputs = {
        "version": pkg.version,
        "recipe": code_inputs(pkg),  # its file, helpers it imports, engine classes
        "toolchain": project.toolchain_for(pkg).identity(),
        # The target's names (ARCH=, the GNU host, the kernel image) reach the steps through
        # ``self.arch`` whatever the toolchain: the kernel's gcc does not carry [target] in its
        # identity, so a changed arch or cpu would otherwise leave its build stale.
        "target": [project.board.target.arch, project.board.target.cpu],
        "board_files": [[f, input_digest(project.board_file(pkg, f))] for f in pkg.board_files],
        "variants": pkg.variant_values,
        # direct dependencies only: an install key covers that package's own
        # dependencies, so the stamp stays linear in the size of the board
        "deps": {d: project.key(d, "install") for d in pkg.depends},
        "board_data": {s: project.board.data.get(s) for s in pkg.board_sections},
    }
    ccache = ccache_identity(project, pkg)
    if ccache is not None:  # only then: keys made without ccache stay as they were
        inputs["ccache"] = ccache
    return inputs


def do_configure(project: Project, pkg: Package) -> None:
    state_file = project.workdir(pkg.name) / TREE_STATE
    state = state_file.read_text().strip() if state_file.exists() else ""
    if state != "pristine" and not pkg.reconfigure_in_place:
        # The tree was configured (or built) with other settings; most build systems would not
        # notice changed flags, so start again from a fresh, patched tree.
        fresh_tree(project, pkg)
    state_file.write_text("configured\n")
    pkg.configure(make_context(project, pkg, "configure", project.stagingdir(pkg.name)))


def do_build(project: Project, pkg: Package) -> None:
    pkg.build(make_context(project, pkg, "build", project.stagingdir(pkg.name)))


def install_inputs(project: Project, pkg: Package) -> dict[str, Any]:
    return {"runtime": pkg.runtime_inputs()} if pkg.dynamic else {}


def do_install(project: Project, pkg: Package) -> None:
    name = pkg.name
    final = project.stagingdir(name)
    guard = guard_for(project)
    setting = f"the staging directory of {name} (under FWBUILD_BUILD_DIR)"
    # mode 0o777: what mkdir gives under the umask, as the staging directory always had
    tmp_name = final.with_name("staging.new")
    with staged_tree(final, setting=setting, guard=guard, tmp=tmp_name, mode=0o777) as tmp:
        pkg.install(make_context(project, pkg, "install", tmp))
        verify_licenses(pkg, project.srcdir(name))  # a changed licence text stops here
        _, missing = expand_target_files(pkg, tmp)
        if missing:
            raise BuildError(
                f"install did not produce {', '.join(missing)} (declared in target_files of "
                f"{pkg.recipe_file}); see {project.log_path(name, 'install')}",
                package=name,
                log=project.log_path(name, "install"),
            )


def do_extra(project: Project, name: str, task: str) -> None:
    BY_NAME["configure"].ensure(project, name)  # a package restored from the cache has no tree
    pkg = project.packages[name]
    method, _ = pkg.extra_tasks[task]
    getattr(pkg, method)(make_context(project, pkg, task, project.stagingdir(name)))


def _no_inputs(project: Project, pkg: Package) -> dict[str, Any]:
    return {}


TABLE: tuple[Stage, ...] = (
    Stage(
        "fetch",
        "download and verify a package's sources and patches",
        own_inputs=fetch_inputs,
        work=do_fetch,
        verbosity=2,
    ),
    Stage(
        "patch",
        "unpack pristine sources and apply the patch series, all or nothing",
        own_inputs=patch_inputs,
        work=do_patch,
        outputs=lambda project, name: (project.srcdir(name),),
    ),
    Stage(
        "configure",
        "configure a package for the target",
        own_inputs=configure_inputs,
        work=do_configure,
        needs=lambda project, name: [
            *(f"install:{d}" for d in project.packages[name].depends),
            "toolchain",
        ],
        logged=True,
    ),
    Stage("build", "compile a package", own_inputs=_no_inputs, work=do_build, logged=True),
    Stage(
        "install",
        "install a package into its staging directory",
        own_inputs=install_inputs,
        work=do_install,
        outputs=lambda project, name: (project.stagingdir(name),),
        logged=True,
        hooks=(CACHE_HOOK,),  # restored from the shared build cache, or stored there
    ),
)
NAMES: tuple[str, ...] = tuple(stage.name for stage in TABLE)
STAGES = NAMES  # the names, in order (what most readers need)
BY_NAME: dict[str, Stage] = {stage.name: stage for stage in TABLE}
