"""What each stage does. Every stage follows the same discipline for crash safety:

1. remove its own stamp and the stamps of the package's later stages (so a kill from here on
   leaves nothing that claims to be finished);
2. do the work, building new trees under temporary names and renaming them into place;
3. write its stamp (atomically) only after everything succeeded.

doit writes its own database only when it exits, so these stamps, not doit's, are what a build
killed with SIGKILL resumes from.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from fwbuild.errors import BuildError, ConfigError
from fwbuild.project import STAGES, Project, write_stamp
from fwbuild.recipe import Package, Source, expand_target_files
from fwbuild.steps import Context, clean_env
from fwbuild.toolchain import build_triplet
from fwbuild.trees import copy_tree, guard_for, remove_tree, replace_tree
from fwbuild.unpack import extract_tarball

TREE_STATE = "tree-state"  # "pristine" after the patch stage, "configured" once configure ran


def invalidate_from(project: Project, name: str, stage: str) -> None:
    for later in STAGES[STAGES.index(stage) :]:
        project.stamp_path(name, later).unlink(missing_ok=True)
    project.rootfs_stamp.unlink(missing_ok=True)


def finish(project: Project, name: str, stage: str, started: float, **extra: object) -> None:
    write_stamp(
        project.stamp_path(name, stage),
        project.key(name, stage),
        inputs=project.stage_inputs(name, stage),
        seconds=round(time.monotonic() - started, 3),
        **extra,
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


def verify_local(project: Project, pkg: Package, path: Path, digests: dict[str, str]) -> None:
    from fwbuild.fetch import verify

    wrong = verify(path, digests)
    if wrong:
        expected = ", ".join(f"{a} {d}" for a, d in digests.items())
        actual = ", ".join(f"{a} {d}" for a, d in wrong.items())
        raise ConfigError(
            f"local file {path} (from {project.overrides.file}) does not match the digest given "
            f"there: expected {expected}, got {actual}; update the digest if you changed the file",
            package=pkg.name,
        )


def do_fetch(project: Project, name: str) -> None:
    from fwbuild.alternatives import fetch_source, is_pinned
    from fwbuild.fetch import RemoteFile, fetch

    started = time.monotonic()
    invalidate_from(project, name, "fetch")
    pkg = project.packages[name]
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
    finish(project, name, "fetch", started, used=used)


def fresh_tree(project: Project, pkg: Package) -> None:
    """Unpack pristine sources and apply the whole patch series, all or nothing, into src/."""
    from fwbuild.patching import PatchFile, apply_series

    name = pkg.name
    work = project.workdir(name)
    guard = guard_for(project)  # work trees are the build's by location (fwbuild.trees)
    setting = f"the source tree of {name} (under FWBUILD_BUILD_DIR)"
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / "src.new"
    remove_tree(tmp, setting=setting, guard=guard)
    override = project.overrides.packages.get(name)
    try:
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
    except BaseException:
        remove_tree(tmp, setting=setting, guard=guard)
        raise
    (work / TREE_STATE).write_text("pristine\n")
    replace_tree(tmp, project.srcdir(name), setting=setting, guard=guard)


def do_patch(project: Project, name: str) -> None:
    started = time.monotonic()
    invalidate_from(project, name, "patch")
    fresh_tree(project, project.packages[name])
    finish(project, name, "patch", started)


def make_context(project: Project, pkg: Package, stage: str, staging: Path) -> Context:
    toolchain = project.toolchain_for(pkg)
    srcdir = project.srcdir(pkg.name)
    deps = {d: project.stagingdir(d) for d in project.closure(pkg.name)}
    env = toolchain.env()
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


def do_configure(project: Project, name: str) -> None:
    started = time.monotonic()
    invalidate_from(project, name, "configure")
    pkg = project.packages[name]
    state_file = project.workdir(name) / TREE_STATE
    state = state_file.read_text().strip() if state_file.exists() else ""
    if state != "pristine" and not pkg.reconfigure_in_place:
        # The tree was configured (or built) with other settings; most build systems would not
        # notice changed flags, so start again from a fresh, patched tree.
        fresh_tree(project, pkg)
    state_file.write_text("configured\n")
    _start_log(project, name, "configure")
    pkg.configure(make_context(project, pkg, "configure", project.stagingdir(name)))
    finish(project, name, "configure", started)


def do_build(project: Project, name: str) -> None:
    started = time.monotonic()
    invalidate_from(project, name, "build")
    pkg = project.packages[name]
    _start_log(project, name, "build")
    pkg.build(make_context(project, pkg, "build", project.stagingdir(name)))
    finish(project, name, "build", started)


def do_install(project: Project, name: str) -> None:
    started = time.monotonic()
    invalidate_from(project, name, "install")
    pkg = project.packages[name]
    final = project.stagingdir(name)
    tmp = final.with_name("staging.new")
    guard = guard_for(project)
    setting = f"the staging directory of {name} (under FWBUILD_BUILD_DIR)"
    remove_tree(tmp, setting=setting, guard=guard)
    tmp.mkdir(parents=True)
    _start_log(project, name, "install")
    try:
        pkg.install(make_context(project, pkg, "install", tmp))
        _, missing = expand_target_files(pkg, tmp)
        if missing:
            raise BuildError(
                f"install did not produce {', '.join(missing)} (declared in target_files of "
                f"{pkg.recipe_file}); see {project.log_path(name, 'install')}",
                package=name,
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_tree(tmp, final, setting=setting, guard=guard)
    finish(project, name, "install", started)


def do_extra(project: Project, name: str, task: str) -> None:
    pkg = project.packages[name]
    method, _ = pkg.extra_tasks[task]
    getattr(pkg, method)(make_context(project, pkg, task, project.stagingdir(name)))


STAGE_ACTIONS = {
    "fetch": do_fetch,
    "patch": do_patch,
    "configure": do_configure,
    "build": do_build,
    "install": do_install,
}
