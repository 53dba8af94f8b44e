"""Directories the build replaces or removes, and writing inside a tree without following links.

One ownership rule covers every tree the build replaces whole or removes (``ROOTFS_DIR``,
``FWBUILD_OUTPUT_DIR`` and a profile's sibling ``output-client``, ``output/legal-info``, the
package work trees ``build/<pkg>/src`` and ``staging``, ``doit dirclean``'s work directory):

* some directories are refused by name, whatever is in them: ``/``, the home directory, the
  project (repository) directory and every directory above it, the build directory and every
  directory above it, and the *protected* paths: the download cache (``FWBUILD_DL_DIR``), local
  source trees of the overrides file, and what recipes declare (``Package.protected_paths``: the
  PKI directory, the secrets file's directory), with every directory above or below them;
* a directory that does not exist, or is empty, may be taken;
* an existing non-empty directory is replaced or removed only when the build made it: it, or a
  directory above it, holds the marker file ``.fwbuild-owned`` that the build writes into every
  tree it creates outside its work trees (the rootfs, the output directory, legal-info) and into
  the build directory itself (so the work trees under ``build/<pkg>/`` are ours by location).

Migration: trees made before the marker existed are recognised by what those builds recorded:
a build directory holding doit's ``.doit.db`` or a ``stamps/`` directory, the ``rootfs.owner``
record beside the rootfs, and the rootfs stamps (``build/stamps/rootfs-*.json``), whose inputs
name the rootfs and output directories they were made in. The next replacement writes the marker.

The marker never enters an image (images are made from the manifest, which lists what packages,
the overlay and the permissions table put there) and holds no time or path, so it changes nothing
in a reproducible build.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import pwd
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fwbuild.errors import ConfigError

if TYPE_CHECKING:
    from fwbuild.project import Project

MARKER = ".fwbuild-owned"


# --- which directories may be replaced ----------------------------------------------------------
@dataclass(frozen=True)
class Guard:
    """What one project's trees must never be, and what earlier builds recorded as theirs."""

    # refused when a target is one of them or above one: (path, what it is)
    above: tuple[tuple[Path, str], ...] = ()
    # refused when a target is one of them, above one or below one
    protected: tuple[tuple[Path, str], ...] = ()
    # made by a build before markers existed (trusted like a marker; see the module doc)
    legacy: frozenset[Path] = field(default_factory=frozenset)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def _homes() -> set[Path]:
    homes = {Path.home()}
    with contextlib.suppress(KeyError):
        homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
    return {_resolved(h) for h in homes if str(h) not in {"", "/"}}


def make_guard(
    *,
    project_dir: Path,
    build_dir: Path | None = None,
    protected: Mapping[Path, str] | None = None,
    legacy: Iterable[Path] = (),
) -> Guard:
    above = [(h, "your home directory") for h in _homes()]
    above.append((_resolved(project_dir), "the project (repository) directory"))
    if build_dir is not None:
        above.append((_resolved(build_dir), "the build directory (FWBUILD_BUILD_DIR)"))
    return Guard(
        above=tuple(above),
        protected=tuple((_resolved(p), why) for p, why in (protected or {}).items()),
        legacy=frozenset(_resolved(p) for p in legacy),
    )


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def refusal(path: Path, guard: Guard, *, whole: bool = True) -> str | None:
    """Why ``path`` may never be replaced or removed, or None. ``whole=False`` for a directory
    that is never removed whole (the build directory): it may hold a protected path."""
    real = _resolved(path)
    if real == Path("/"):
        return "the root directory /"
    for named, why in (*guard.protected, *guard.above):
        if real == named:
            return why
    for protected, why in guard.protected:
        if _within(real, protected):
            return f"inside {why} ({protected})"
    for named, why in (*guard.above, *(guard.protected if whole else ())):
        if _within(named, real):
            return f"a directory holding {why} ({named})"
    return None


def check_target(path: Path, setting: str, guard: Guard) -> None:
    """Refuse, by name, a directory the build must never replace (before anything is touched)."""
    why = refusal(path, guard)
    if why is not None:
        raise ConfigError(
            f"{setting} is {path}, which is {why}: the build replaces {setting} whole and would "
            f"delete it. Point {setting} at a new or empty directory of its own (or leave it "
            "unset for the default)"
        )


def is_owned(path: Path, guard: Guard) -> bool:
    """Whether the build made ``path``: a marker in it or above it, or an older build's record."""
    real = _resolved(path)
    for p in (real, *real.parents):
        if p in guard.legacy:
            return True
        try:
            if stat.S_ISREG(os.lstat(p / MARKER).st_mode):
                return True
        except OSError:
            continue
    return False


def claim(path: Path, setting: str, guard: Guard) -> None:
    """Check that the build may replace or remove ``path``; ConfigError naming ``setting`` if not.

    Allowed: nothing there, an empty directory, or a directory the build made (``is_owned``).
    """
    check_target(path, setting, guard)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        found = f"is a symbolic link (to {os.readlink(path)}), not a directory the build made"
    elif not stat.S_ISDIR(info.st_mode):
        found = "is a file, not a directory the build made"
    else:
        with os.scandir(path) as entries:
            if next(entries, None) is None:
                return  # an empty directory may be taken over
        if is_owned(path, guard):
            return
        found = f"exists, is not empty and was not made by this build (it holds no {MARKER} marker)"
    raise ConfigError(
        f"{setting} is {path}, which {found}; the build replaces {setting} whole and would "
        f"delete what is there. Point {setting} at a new or empty directory, or move the "
        "directory away yourself if an older build made it"
    )


def write_marker(tree: Path, what: str) -> None:
    """Mark ``tree`` as made by the build (what made it, no time or path: reproducible)."""
    data = json.dumps({"made_by": "fwbuild", "tree": what}, sort_keys=True) + "\n"
    fd = os.open(tree / MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)


BUILD_SETTING = "FWBUILD_BUILD_DIR ([paths] build)"


def check_build_dir_name(build: Path, guard: Guard) -> None:
    """Refuse, by name, a build directory the build may never fill with work trees."""
    probe = Guard(above=tuple(a for a in guard.above if a[0] != _resolved(build)),
                  protected=guard.protected, legacy=guard.legacy)  # fmt: skip
    # never removed whole, so it may hold the download cache (FWBUILD_DL_DIR=build/dl)
    why = refusal(build, probe, whole=False)
    if why is not None:
        raise ConfigError(
            f"{BUILD_SETTING} is {build}, which is {why}: the build creates and replaces work "
            f"trees in it. Point {BUILD_SETTING} at a new or empty directory of its own (or leave "
            "it unset for the default)"
        )


def claim_build_dir(build: Path, guard: Guard) -> None:
    """Create or adopt the build directory and mark it, so the work trees in it are ours.

    A build directory made before markers existed is recognised by doit's database or a
    ``stamps/`` directory in it; anything else that is not empty is refused.
    """
    check_build_dir_name(build, guard)
    if (build / MARKER).is_file():
        return
    if build.is_dir() and not build.is_symlink():
        with os.scandir(build) as it:
            names = {e.name for e in it}
        legacy = ".doit.db" in names or (build / "stamps").is_dir()
        if names and not legacy and not is_owned(build, guard):
            raise ConfigError(
                f"{BUILD_SETTING} is {build}: it exists, is not empty and was not made by this "
                f"build (it holds no {MARKER} marker); the build creates and removes work trees "
                f"in it. Point {BUILD_SETTING} at a new or empty directory"
            )
    elif (build.exists() or build.is_symlink()) and not build.is_dir():
        raise ConfigError(f"{BUILD_SETTING} is {build}, which is not a directory; point it at one")
    build.mkdir(parents=True, exist_ok=True)
    write_marker(build, "build directory")


def _legacy_records(project: Project) -> list[Path]:
    """Directories that builds before the marker recorded as theirs (see the module doc)."""
    found: list[Path] = []
    rootfs = project.board.paths.rootfs
    if rootfs.name:
        with contextlib.suppress(OSError, ValueError):
            found.append(Path(rootfs.with_name(f"{rootfs.name}.owner").read_text().strip()))
    stamps = project.board.paths.build / "stamps"
    for stamp in sorted(stamps.glob("rootfs-*.json")) if stamps.is_dir() else []:
        try:
            inputs = json.loads(stamp.read_text()).get("inputs", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in ("rootfs_dir", "output_dir"):
            if isinstance(inputs, dict) and isinstance(inputs.get(key), str):
                found.append(Path(inputs[key]))
    return [p for p in found if p.is_absolute() and p != Path("/")]


def protected_paths(project: Project) -> dict[Path, str]:
    """What no tree of the project may be: the download cache, local sources, recipes' paths."""
    paths: dict[Path, str] = {project.board.paths.downloads: "the download cache (FWBUILD_DL_DIR)"}
    overrides = project.overrides
    for name, override in overrides.packages.items():
        if override.srcdir:
            paths[override.srcdir] = f"the local source tree of {name} ({overrides.file})"
    for pkg in project.packages.values():
        declared = getattr(pkg, "protected_paths", None)
        if callable(declared):
            for path, why in declared().items():
                paths[Path(path)] = f"{why} (recipe {pkg.name})"
    return paths


def project_guard(project: Project) -> Guard:
    """What the project's trees may never be; looks at nothing but a few small records."""
    return make_guard(
        project_dir=project.board.paths.project,
        build_dir=project.board.paths.build,
        protected=protected_paths(project),
        legacy=_legacy_records(project),
    )


def guard_for(project: Project) -> Guard:
    """The project's guard; also creates or adopts (and marks) its build directory."""
    guard = project_guard(project)
    claim_build_dir(project.board.paths.build, guard)
    return guard


def output_targets(project: Project) -> dict[str, Path]:
    """The trees a board's build replaces whole, by the setting that names them."""
    paths = project.board.paths
    return {"ROOTFS_DIR": paths.rootfs, "FWBUILD_OUTPUT_DIR ([paths] output)": paths.output}


def check_names(project: Project) -> Guard:
    """Refuse, by name alone, a build, rootfs or output directory the build may never fill or
    replace (/, a home, the project, the download cache...); returns the project's guard. Run
    before the disk is asked whether they can be written, so that ``ROOTFS_DIR=/`` says what is
    wrong with the setting, not that / is not writable by a user (who might then try root)."""
    guard = project_guard(project)
    check_build_dir_name(project.board.paths.build, guard)
    for setting, path in output_targets(project).items():
        check_target(path, setting, guard)
    return guard


# --- replacing and removing -----------------------------------------------------------------------
def _sibling(path: Path, suffix: str) -> Path:
    if not path.name:
        raise ConfigError(f"{path} has no name of its own; the build cannot make a tree there")
    return path.with_name(f".{path.name}.{suffix}")


def remove_tree(path: Path, *, setting: str, guard: Guard) -> None:
    """Remove a directory the build owns: renamed aside first, so a crash leaves no half."""
    claim(path, setting, guard)
    if not os.path.lexists(path):
        return
    trash = _sibling(path, f"trash-{os.getpid()}")
    if os.path.lexists(trash):
        shutil.rmtree(trash)
    path.rename(trash)
    shutil.rmtree(trash)


def new_tree(
    path: Path, *, setting: str, guard: Guard, what: str | None, mode: int = 0o755
) -> Path:
    """Make an empty tree at ``path`` (removing a leftover one), marked when ``what`` is given."""
    remove_tree(path, setting=setting, guard=guard)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=mode)
    if what is not None:
        write_marker(path, what)
    return path


def replace_tree(new: Path, dest: Path, *, setting: str, guard: Guard) -> None:
    """Put the finished tree ``new`` where ``dest`` is, if the build may replace ``dest``: the old
    one is renamed aside first and removed last, so no half-written tree is under the real name."""
    claim(dest, setting, guard)
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = _sibling(dest, "old")
    remove_tree(old, setting=setting, guard=guard)
    if os.path.lexists(dest):
        dest.rename(old)
    new.rename(dest)
    if os.path.lexists(old):
        shutil.rmtree(old)  # claimed above, under its own name


@contextlib.contextmanager
def staged_tree(
    dest: Path,
    *,
    setting: str,
    guard: Guard,
    what: str | None = None,
    mode: int = 0o755,
    tmp: Path | None = None,
    create: bool = True,
) -> Iterator[Path]:
    """Build a tree under a temporary name beside ``dest`` (``.<name>.new``, or ``tmp``) and put
    it in place of ``dest`` when the block succeeds; remove it when the block fails. No
    half-made tree ever has the real name, and a failed one leaves nothing behind.

    ``what`` marks the new tree (``new_tree``); ``create`` False only clears the temporary name
    (for work that makes the directory itself, as copying or unpacking a tree does)."""
    new = tmp or _sibling(dest, "new")
    if create:
        new_tree(new, setting=setting, guard=guard, what=what, mode=mode)
    else:
        remove_tree(new, setting=setting, guard=guard)
        new.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield new
    except BaseException:
        remove_tree(new, setting=setting, guard=guard)
        raise
    replace_tree(new, dest, setting=setting, guard=guard)


VCS_DIRS = (".git", ".hg", ".svn")


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a local source tree (an override) into the new directory ``dest``, leaving VCS
    metadata (:data:`VCS_DIRS`, at any depth) behind. Links are copied as links, never followed;
    modes and times are kept, owners and hard links are not (as ``shutil.copytree`` does).

    By GNU cp, with reflinks where the file system has them (a copy-on-write clone costs no
    data): ``shutil.copytree`` took 2.3 times cp's time and CPU on a 4,400-file tree. Not hard
    links: the tree is configured and built in place. Without GNU cp, ``shutil.copytree``."""
    cp = gnu_tool("cp")
    if cp is None:
        shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(*VCS_DIRS))
        return
    entries = sorted(e for e in os.listdir(src) if e not in VCS_DIRS)
    dest.mkdir()
    try:
        if entries:
            _run_tool(
                [cp, "-R", "--no-dereference", "--preserve=mode,timestamps", "--reflink=auto",
                 "--", *(os.path.join(src, e) for e in entries), str(dest)],
                dest,
            )  # fmt: skip
        for dirpath, dirnames, filenames in os.walk(dest):  # nested ones: a submodule's
            for name in [d for d in dirnames if d in VCS_DIRS]:
                shutil.rmtree(os.path.join(dirpath, name))
                dirnames.remove(name)
            for name in [f for f in filenames if f in VCS_DIRS]:  # a submodule's .git file
                os.unlink(os.path.join(dirpath, name))
        shutil.copystat(src, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def gnu_tool(name: str) -> str | None:
    """The path of a GNU tool (cp, tar), if installed and GNU's: the options we pass are GNU's.
    Asked once per process and path."""
    path = shutil.which(name)
    return _gnu_at(path) if path else None


@functools.cache
def _gnu_at(path: str) -> str | None:
    import subprocess

    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return path if "GNU" in version.stdout.partition("\n")[0] else None


def _run_tool(argv: list[str], where: Path) -> None:
    """Run a copying tool; its failure as the OSError its message names (a full disk, a
    read-only directory …: the build names those), else one that quotes it."""
    import subprocess

    env = {**os.environ, "LC_ALL": "C"}  # messages in English, as os.strerror's are
    env.pop("LANGUAGE", None)
    run = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if run.returncode == 0:
        return
    message = run.stderr.strip()
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM):
        if os.strerror(code) in message:
            raise OSError(code, os.strerror(code), str(where))
    raise OSError(errno.EIO, f"{os.path.basename(argv[0])} failed: {message[-500:]}", str(where))


# --- inside a tree, never through a link ----------------------------------------------------------
class TreeConflict(Exception):
    """A path inside a tree runs into a symbolic link or a non-directory on the way."""

    def __init__(self, path: str, kind: str, target: str = "") -> None:
        self.path = path  # relative to the tree, e.g. "var/run"
        self.kind = kind  # "link", "file" or "directory"
        self.target = target  # a link's target
        super().__init__(path)

    def describe(self) -> str:
        if self.kind == "link":
            return f"/{self.path} is a symbolic link (to {self.target})"
        if self.kind == "directory":
            return f"/{self.path} is a directory"
        return f"/{self.path} is not a directory"


def split(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p and p != "."]
    if ".." in parts:
        raise TreeConflict(rel, "file")
    return parts


def conflict_at(parent_fd: int, name: str, done: Sequence[str]) -> TreeConflict:
    """What is at ``name`` (a link, a file, a directory) that a walk or an open ran into."""
    rel = "/".join([*done, name])
    info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        return TreeConflict(rel, "link", os.readlink(name, dir_fd=parent_fd))
    if stat.S_ISDIR(info.st_mode):
        return TreeConflict(rel, "directory")
    return TreeConflict(rel, "file")


def open_dir(root_fd: int, parts: Sequence[str], *, create: bool, mode: int = 0o755) -> int:
    """A descriptor of the directory ``parts`` below ``root_fd``, never following a link on the
    way (TreeConflict names the link); ``create`` makes missing directories."""
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in {errno.ELOOP, errno.ENOTDIR}:
                    raise conflict_at(fd, part, parts[:index]) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_root(root: Path) -> int:
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


def read_file(root: Path, rel: str) -> bytes:
    """A regular file's bytes, reached from ``root`` without following any link."""
    parts = split(rel)
    root_fd = open_root(root)
    try:
        parent = open_dir(root_fd, parts[:-1], create=False)
    finally:
        os.close(root_fd)
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise conflict_at(parent, parts[-1], parts[:-1]) from None
            raise
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise TreeConflict(rel, "directory")
        return fh.read()
