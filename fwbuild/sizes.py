"""Image size: what each package puts in the rootfs, and the board's flash-size budget.

A router's flash is small, so the board file can set a budget that ``doit rootfs`` enforces::

    [rootfs]
    max_size = "6M"          # the rootfs's files (stripped), added up
    [rootfs.package_limits]
    openssl = "1536K"        # one package's files in the rootfs
    [image]
    max_initramfs = "2M"     # output/rootfs.cpio.gz, the compressed initramfs the kernel boots

Sizes are bytes (an integer) or a string with a binary suffix: ``"512K"``, ``"16M"``, ``"1.5G"``
(K = 1024). A build over budget fails before anything is replaced, so the output directory keeps
the last good build, and its message names the limit, the actual size, the biggest contributors
and what grew since that last build (its ``manifest.json``).

The size data (per package, per file, per image) is read from manifests, so two builds can be
compared (``python3 -m fwbuild.graphs size-compare``); ``fwbuild.graphs`` draws it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwbuild.errors import BuildError, ConfigError
from fwbuild.project import Project

INITRAMFS = "rootfs.cpio.gz"
MANIFEST = "manifest.json"
# Files of an output directory that describe the images rather than being images.
METADATA = frozenset({MANIFEST, "sha256sums", "sbom.spdx.json"})
# Who else puts files into the rootfs besides the packages (fwbuild.rootfs).
PSEUDO_PACKAGES = ("overlay",)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_TOP = 5


def human(size: int) -> str:
    """``52.3 KiB``: sizes as people compare them (binary units, as the budget's suffixes)."""
    value = float(abs(size))
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            text = f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
            return ("-" if size < 0 else "") + text
        value /= 1024
    raise AssertionError("unreachable")


def signed(delta: int) -> str:
    return ("+" if delta >= 0 else "-") + human(abs(delta))


def parse_size(value: Any, key: str, file: Path) -> int:
    """A budget value: bytes as an integer, or ``"512K"``/``"16M"``/``"1.5G"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (m := _SIZE.fullmatch(value.strip())):
        size = int(float(m[1]) * _UNITS[m[2].upper()])
        if size > 0:
            return size
    raise ConfigError(
        f"{file}: {key} = {value!r} is not a size; write a positive number of bytes (16777216) "
        'or a string with a binary suffix ("512K", "16M", "1.5G"; K = 1024)'
    )


@dataclass(frozen=True)
class Budget:
    file: Path
    max_size: int | None = None
    max_initramfs: int | None = None
    package_limits: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.max_size is None and self.max_initramfs is None and not self.package_limits


def _section(data: Mapping[str, Any], name: str, file: Path) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{file}: [{name}] must be a table")
    return value


def read_budget(project: Project) -> Budget:
    """The budget in the board file; a bad value is a ConfigError naming its key."""
    file, data = project.board.file, project.board.data
    rootfs, image = _section(data, "rootfs", file), _section(data, "image", file)
    limits = rootfs.get("package_limits", {})
    if not isinstance(limits, Mapping):
        raise ConfigError(
            f'{file}: [rootfs.package_limits] must be a table of package = size, e.g. hello = "64K"'
        )
    known = [*project.packages, *PSEUDO_PACKAGES]
    parsed: dict[str, int] = {}
    for name, raw in limits.items():
        if name not in known:
            raise ConfigError(
                f"{file}: [rootfs.package_limits] {name} names no package of this board (its "
                f"packages: {', '.join(known)}); fix the name or remove the line"
            )
        parsed[name] = parse_size(raw, f"[rootfs.package_limits] {name}", file)
    return Budget(
        file=file,
        max_size=None
        if rootfs.get("max_size") is None
        else parse_size(rootfs["max_size"], "[rootfs] max_size", file),
        max_initramfs=None
        if image.get("max_initramfs") is None
        else parse_size(image["max_initramfs"], "[image] max_initramfs", file),
        package_limits=parsed,
    )


# --- what is in a build ----------------------------------------------------------------------
@dataclass(frozen=True)
class FileSize:
    path: str
    package: str
    size: int


@dataclass
class Sizes:
    """One build's sizes: the rootfs's regular files, and the images beside them (if known)."""

    files: dict[str, FileSize]
    images: dict[str, int] = field(default_factory=dict)
    source: str = ""

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files.values())

    def packages(self) -> dict[str, int]:
        """Bytes per package, biggest first (ties by name, so tables are stable)."""
        sums: dict[str, int] = {}
        for f in self.files.values():
            sums[f.package] = sums.get(f.package, 0) + f.size
        return dict(sorted(sums.items(), key=lambda kv: (-kv[1], kv[0])))

    def file_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.files.values():
            counts[f.package] = counts.get(f.package, 0) + 1
        return counts

    def biggest(self, package: str | None = None, top: int = _TOP) -> list[FileSize]:
        chosen = [f for f in self.files.values() if package is None or f.package == package]
        return sorted(chosen, key=lambda f: (-f.size, f.path))[:top]


def sizes_of(entries: Iterable[Any], source: str = "") -> Sizes:
    """From manifest entries: ``fwbuild.manifest.Entry`` objects or their JSON dicts."""
    files: dict[str, FileSize] = {}
    for e in entries:
        get = e.get if isinstance(e, dict) else lambda k, e=e: getattr(e, k, None)
        if get("type") != "f":
            continue
        path, size, package = get("path"), get("size"), get("package")
        if not isinstance(path, str) or not isinstance(size, int) or size < 0:
            raise BuildError(f"{source or 'a manifest'}: entry {path!r} has no valid size")
        files[path] = FileSize(path, package or "(none)", size)
    return Sizes(files, source=source)


def read_manifest(path: Path) -> Sizes:
    """A manifest (``output/manifest.json``, ``build/rootfs.manifest.json``) as sizes."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"{path} does not exist; run `doit rootfs` first") from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path} is not a readable manifest ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise BuildError(f"{path} is not a manifest: it has no list of entries")
    return sizes_of(data["entries"], str(path))


def read_build(where: Path) -> Sizes:
    """An output directory (manifest and images) or a manifest file alone."""
    if where.is_dir():
        sizes = read_manifest(where / MANIFEST)
        sizes.images = {
            p.name: p.stat().st_size
            for p in sorted(where.iterdir())
            if p.is_file() and p.name not in METADATA and not p.name.startswith(".")
        }
        sizes.source = str(where)
        return sizes
    return read_manifest(where)


def previous_build(project: Project) -> Sizes | None:
    """The last good build: the output directory the next build would replace."""
    out = project.board.paths.output
    try:
        return read_build(out) if (out / MANIFEST).is_file() else None
    except BuildError:
        return None  # an unreadable old manifest must not stop a new build


# --- comparing two builds --------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    name: str
    old: int | None  # None: new in this build
    new: int | None  # None: gone

    @property
    def delta(self) -> int:
        return (self.new or 0) - (self.old or 0)


def changes(old: Mapping[str, int], new: Mapping[str, int]) -> list[Change]:
    """Everything whose size differs, biggest growth first, then the biggest shrink last."""
    found = [
        Change(n, old.get(n), new.get(n)) for n in set(old) | set(new) if old.get(n) != new.get(n)
    ]
    return sorted(found, key=lambda c: (-c.delta, c.name))


def _describe(change: Change) -> str:
    if change.old is None:
        return f"{change.name} {signed(change.delta)} (new)"
    if change.new is None:
        return f"{change.name} {signed(change.delta)} (gone)"
    return f"{change.name} {signed(change.delta)} ({human(change.old)} -> {human(change.new)})"


def growth_text(old: Sizes | None, new: Sizes, package: str | None = None) -> str:
    """What grew since the last build, in one sentence."""
    if old is None:
        return "There is no previous build to compare with."
    where = f"Since the last build ({old.source})"

    def pick(s: Sizes) -> dict[str, int]:
        return {p: f.size for p, f in s.files.items() if package is None or f.package == package}

    files = [c for c in changes(pick(old), pick(new)) if c.delta > 0][:_TOP]
    if package is None:
        packages = [c for c in changes(old.packages(), new.packages()) if c.delta > 0][:_TOP]
        if not packages:
            return f"{where} no package grew."
        grew = "; ".join(map(_describe, packages))
        return f"{where} these grew: {grew}; files: {'; '.join(map(_describe, files))}."
    if not files:
        return f"{where} none of its files grew."
    return f"{where} these of its files grew: {'; '.join(map(_describe, files))}."


def _contributors(sizes: Sizes) -> str:
    total = sizes.total or 1
    packages = list(sizes.packages().items())[:_TOP]
    pkgs = ", ".join(f"{p} {human(n)} ({100 * n / total:.0f}%)" for p, n in packages)
    files = ", ".join(f"{f.path} {human(f.size)} ({f.package})" for f in sizes.biggest())
    return f"Biggest packages: {pkgs}. Biggest files: {files}."


def _fail(budget: Budget, problems: list[str], project: Project) -> None:
    out = project.board.paths.output
    kept = (
        f"{out} still holds the last good build"
        if (out / MANIFEST).is_file()
        else f"nothing was written to {out}"
    )
    raise BuildError(
        f"{budget.file}: the image is over its size budget. {' '.join(problems)} "
        f"The build stopped before replacing its output: {kept}. Make the image smaller (fewer "
        "target_files or packages) or raise the limit in the board file."
    )


# --- the checks ``fwbuild.rootfs`` calls -----------------------------------------------------
def rootfs_problems(budget: Budget, new: Sizes, old: Sizes | None) -> list[str]:
    problems = []
    total = new.total
    if budget.max_size is not None and total > budget.max_size:
        problems.append(
            f"The rootfs's files take {human(total)} ({total} bytes), over [rootfs] max_size = "
            f"{human(budget.max_size)} ({budget.max_size} bytes) by "
            f"{human(total - budget.max_size)}. {_contributors(new)} {growth_text(old, new)}"
        )
    packages = new.packages()
    for name, limit in sorted(budget.package_limits.items()):
        size = packages.get(name, 0)
        if size > limit:
            biggest = ", ".join(f"{f.path} {human(f.size)}" for f in new.biggest(name))
            problems.append(
                f"Package {name} takes {human(size)} ({size} bytes), over [rootfs.package_limits] "
                f"{name} = {human(limit)} ({limit} bytes); its biggest files: {biggest}. "
                f"{growth_text(old, new, name)}"
            )
    return problems


def initramfs_problems(budget: Budget, size: int, new: Sizes, old: Sizes | None) -> list[str]:
    if budget.max_initramfs is None or size <= budget.max_initramfs:
        return []
    before = old.images.get(INITRAMFS) if old else None
    was = f" (the last build's was {human(before)}, {signed(size - before)})" if before else ""
    return [
        f"{INITRAMFS}, the compressed initramfs, is {human(size)} ({size} bytes){was}, over "
        f"[image] max_initramfs = {human(budget.max_initramfs)} ({budget.max_initramfs} bytes). "
        f"Its contents: {_contributors(new)} {growth_text(old, new)}"
    ]


def check_rootfs(project: Project, manifest: Iterable[Any]) -> None:
    """Before the rootfs is swapped in: its files against ``max_size`` and the package limits."""
    budget = read_budget(project)
    if budget.max_size is None and not budget.package_limits:
        return
    new = sizes_of(manifest, "this build")
    problems = rootfs_problems(budget, new, previous_build(project))
    if problems:
        _fail(budget, problems, project)


def check_images(project: Project, manifest: Iterable[Any], images_dir: Path) -> None:
    """Before the output directory is swapped in: the initramfs against ``max_initramfs``."""
    budget = read_budget(project)
    if budget.max_initramfs is None:
        return
    size = (images_dir / INITRAMFS).stat().st_size
    new = sizes_of(manifest, "this build")
    problems = initramfs_problems(budget, size, new, previous_build(project))
    if problems:
        _fail(budget, problems, project)


def budget_holds(project: Project) -> bool:
    """Whether the current output is within the budget (a lowered budget makes the rootfs task
    run again, and fail with its full message, instead of calling it up to date)."""
    budget = read_budget(project)
    if budget.empty:
        return True
    out = project.board.paths.output
    try:
        current = read_build(out)
        size = (out / INITRAMFS).stat().st_size if budget.max_initramfs is not None else 0
    except (BuildError, OSError):
        return False
    return not rootfs_problems(budget, current, None) and not initramfs_problems(
        budget, size, current, None
    )
