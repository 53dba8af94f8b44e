"""The board file: what a board is made of and where its build lives.

A board file is TOML. The engine reads only the keys below; anything else in it belongs to the
board's own recipes and templates and is handed through untouched as ``Board.data``.

    [board]      name, packages (what goes into the rootfs; dependencies are pulled in),
                 extends (another board file underneath this one), profile (see _profiled)
    [target]     arch, cpu, libc, triplet, cflags, ldflags
    [variants]   name = true/false, read by recipes (``when="+mppc"``)
    [paths]      build, downloads, rootfs, output (relative to the project directory)
    [mirrors]    primary, backup
    [rootfs]     overlay (a directory copied into the rootfs), permissions (a table file)
    [toolchains.NAME]  further toolchains recipes can ask for (kind = "gcc", prefix, install)
    [tasks.NAME]       board-level task names: doc = "…", run = ["install:linux", …]

Environment variables override the paths and the download settings, so a CI job or a developer can
move them without editing the board: ``FWBUILD_BUILD_DIR``, ``FWBUILD_DL_DIR``, ``ROOTFS_DIR``,
``FWBUILD_OUTPUT_DIR``, ``FWBUILD_PRIMARY_MIRROR``, ``FWBUILD_OFFLINE``, ``FWBUILD_OVERRIDES``,
``FWBUILD_JOBS``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwbuild.errors import ConfigError

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"environment variable {name}={raw!r} is not a boolean; use 1/0, yes/no or true/false"
    )


@dataclass(frozen=True)
class Target:
    arch: str
    cpu: str
    libc: str
    triplet: str
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paths:
    project: Path
    build: Path
    downloads: Path
    rootfs: Path
    output: Path
    recipes: Path
    patches: Path
    pins: Path


@dataclass(frozen=True)
class Board:
    name: str
    file: Path
    packages: tuple[str, ...]
    target: Target
    variants: dict[str, bool]
    paths: Paths
    primary_mirror: str | None
    backup_mirrors: tuple[str, ...]
    offline: bool
    overrides_file: Path | None
    jobs: int
    overlay: Path | None
    permissions: Path | None
    toolchains: dict[str, dict[str, Any]]
    aliases: dict[str, dict[str, Any]]
    data: dict[str, Any] = field(repr=False, default_factory=dict)

    def variant(self, name: str) -> bool:
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise ConfigError(
                f"{self.file}: variant {name!r} is used by a recipe but not set in [variants] "
                f"(known: {known}); add `{name} = true` or `false` to the board file"
            )
        return self.variants[name]


def _table(data: dict[str, Any], key: str, file: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: [{key}] must be a table")
    return value


def _str_list(value: Any, what: str, file: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{file}: {what} must be a list of strings")
    return tuple(value)


def _require(table: dict[str, Any], key: str, section: str, file: Path) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{file}: [{section}] {key} is missing or not a string; set it")
    return value


def _aliases(tasks: dict[str, Any], file: Path) -> dict[str, dict[str, Any]]:
    for name, spec in tasks.items():
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("doc"), str)
            or not isinstance(spec.get("run"), list)
        ):
            raise ConfigError(
                f'{file}: [tasks.{name}] needs doc = "one line" and run = ["task", ...]'
            )
    return tasks


def _profiled(path: Path, profile: str | None, *, sibling: bool = False) -> Path:
    """A profile of a board (``[board] profile = "client"``) shares the build directory, so its
    packages are built once, but writes its rootfs and images beside the board's, not in them."""
    if not profile:
        return path
    return path.with_name(f"{path.name}-{profile}") if sibling else path / profile


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_board(file: Path, chain: list[Path]) -> dict[str, Any]:
    """A board file, with ``[board] extends = "other.toml"`` merged underneath it (tables merge
    key by key, everything else is replaced), so a profile states only what differs."""
    if file in chain:
        raise ConfigError(
            f"board files extend each other in a loop: {' -> '.join(map(str, chain))}"
        )
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        where = f" (extended by {chain[-1]})" if chain else ""
        raise ConfigError(f"board file {file}{where} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"board file {file} is not valid TOML: {exc}") from None
    parent = data.get("board", {}).get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{file}: [board] extends must be a file name")
    base = _read_board((file.parent / parent).resolve(), [*chain, file])
    merged = _merge(base, data)
    merged["board"].pop("extends", None)
    return merged


def load_board(file: Path, project: Path | None = None) -> Board:
    """Read a board file; paths are relative to ``project`` (default: two levels up)."""
    file = file.resolve()
    data = _read_board(file, [])
    project = (project or file.parent.parent).resolve()

    board = _table(data, "board", file)
    target = _table(data, "target", file)
    variants = _table(data, "variants", file)
    paths = _table(data, "paths", file)
    mirrors = _table(data, "mirrors", file)
    rootfs = _table(data, "rootfs", file)

    for key, value in variants.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{file}: [variants] {key} must be true or false, not {value!r}")

    def path(env: str, key: str, default: str) -> Path:
        raw = os.environ.get(env) or paths.get(key, default)
        return (project / raw).resolve()

    build = path("FWBUILD_BUILD_DIR", "build", "build")
    profile = board.get("profile")
    if profile is not None and (not isinstance(profile, str) or not profile.isidentifier()):
        raise ConfigError(f'{file}: [board] profile must be a short name, e.g. "client"')
    overrides = os.environ.get("FWBUILD_OVERRIDES")
    jobs_raw = os.environ.get("FWBUILD_JOBS") or str(board.get("jobs", os.cpu_count() or 1))
    if not jobs_raw.isdigit() or int(jobs_raw) < 1:
        raise ConfigError(
            f"FWBUILD_JOBS / [board] jobs must be a positive integer, not {jobs_raw!r}"
        )
    primary = os.environ.get("FWBUILD_PRIMARY_MIRROR", mirrors.get("primary") or "")

    return Board(
        name=_require(board, "name", "board", file),
        file=file,
        packages=_str_list(board.get("packages", []), "[board] packages", file),
        target=Target(
            arch=_require(target, "arch", "target", file),
            cpu=_require(target, "cpu", "target", file),
            libc=_require(target, "libc", "target", file),
            triplet=_require(target, "triplet", "target", file),
            cflags=_str_list(target.get("cflags", []), "[target] cflags", file),
            ldflags=_str_list(target.get("ldflags", []), "[target] ldflags", file),
        ),
        variants=dict(variants),
        paths=Paths(
            project=project,
            build=build,
            downloads=path("FWBUILD_DL_DIR", "downloads", "dl"),
            rootfs=_profiled(
                Path(os.environ["ROOTFS_DIR"]).resolve()
                if os.environ.get("ROOTFS_DIR")
                else (project / paths.get("rootfs", str(build / "rootfs"))).resolve(),
                profile,
                sibling=True,
            ),
            output=_profiled(path("FWBUILD_OUTPUT_DIR", "output", "output"), profile, sibling=True),
            recipes=(project / paths.get("recipes", "recipes")).resolve(),
            patches=(project / paths.get("patches", "patches")).resolve(),
            pins=(project / paths.get("pins", "configs/pins.lock")).resolve(),
        ),
        primary_mirror=primary.rstrip("/") or None,
        backup_mirrors=tuple(
            m.rstrip("/") for m in _str_list(mirrors.get("backup", []), "[mirrors] backup", file)
        ),
        offline=env_flag("FWBUILD_OFFLINE", bool(board.get("offline", False))),
        overrides_file=Path(overrides).expanduser().resolve() if overrides else None,
        jobs=int(jobs_raw),
        overlay=(project / rootfs["overlay"]).resolve() if rootfs.get("overlay") else None,
        toolchains=_table(data, "toolchains", file),
        aliases=_aliases(_table(data, "tasks", file), file),
        permissions=(project / rootfs["permissions"]).resolve()
        if rootfs.get("permissions")
        else None,
        data=data,
    )
