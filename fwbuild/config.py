"""The board file: what a board is made of and where its build lives.

A board file is TOML. The engine reads the sections below; the other sections belong to the
board's recipes, which declare them (``Package.settings``), and are handed through as
``Board.data`` (typed: ``Board.settings(name)``). A section nobody declares is an error.

    [board]      name, packages (what goes into the rootfs; dependencies are pulled in),
                 extends (another board file underneath this one), profile (see _profiled),
                 jobs, offline
    [target]     arch, cpu, libc, triplet, cflags, ldflags, toolchain (the userland compiler:
                 "zig", or the name of a [toolchains.NAME] of kind "gcc"), strip (default
                 llvm-strip for zig, the GNU toolchain's own <prefix>strip); fwbuild.toolchain
    [variants]   name = true/false, read by recipes (``when="+mppc"``)
    [paths]      build, downloads, rootfs, output, recipes, patches, pins (relative to the project)
    [mirrors]    primary, backup
    [rootfs]     overlay (a directory copied into the rootfs), permissions (a table file),
                 max_size and [rootfs.package_limits] (size budgets)
    [image]      max_initramfs (a size budget)
    [downloads]  timeout, deadline, min_speed, max_size
    [cve]        feed_url, fail_on (``doit cve-check``, fwbuild.cve)
    [kconfig]    package = [fragment files] for Kconfig packages (fwbuild.kinds)
    [toolchains.NAME]  further toolchains recipes can ask for (kind = "gcc", prefix, install)
    [tasks.NAME]       board-level task names: doc = "…", run = ["install:linux", …]

Environment variables override the paths and the download settings, so a CI job or a developer can
move them without editing the board: ``FWBUILD_BUILD_DIR``, ``FWBUILD_DL_DIR``, ``ROOTFS_DIR``,
``FWBUILD_OUTPUT_DIR``, ``FWBUILD_PRIMARY_MIRROR``, ``FWBUILD_OFFLINE``, ``FWBUILD_OVERRIDES``,
``FWBUILD_JOBS``.

Every section and key is checked against a schema (``fwbuild.schema``: the engine's sections and
the models the board's recipes declare) before anything is built. What passed is remembered as a
digest in the build directory, so a no-op build does not pay for importing pydantic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwbuild.envflag import env_flag
from fwbuild.errors import ConfigError
from fwbuild.fsutil import atomic_write


@dataclass(frozen=True)
class Target:
    arch: str
    cpu: str
    libc: str
    triplet: str
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    # "zig", or a [toolchains.NAME] of kind "gcc" (a GNU cross gcc for the userland)
    toolchain: str = "zig"
    strip: str | None = None  # None: the toolchain's own (fwbuild.toolchain)


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
    # The files the board is read from, the board itself first (a profile, then what it extends),
    # with each one's own data: an error names the file that sets the key.
    layers: tuple[tuple[Path, dict[str, Any]], ...] = field(repr=False, default=())
    # Sections the loaded recipes declare: name -> pydantic model or "module:Class" (the project
    # fills it in), and the sections once validated by them.
    section_models: dict[str, Any] = field(repr=False, default_factory=dict)
    typed: dict[str, Any] = field(repr=False, default_factory=dict)
    # Digests of board contents (with the schema's code) that have passed validation already.
    checked: set[str] = field(repr=False, default_factory=set)
    engine_key: str = field(repr=False, default="")

    def settings(self, section: str) -> Any:
        """The board's ``[section]`` validated by the model a loaded recipe declares for it
        (a pydantic model instance, or None when the board leaves the section out)."""
        if section not in self.section_models:
            raise ConfigError(
                f"{self.file}: a recipe reads [{section}] but none of this board's recipes "
                f'declares it; add `settings = {{"{section}": Model}}` to the recipe'
            )
        if section not in self.typed:
            from fwbuild.schema import resolve_model, validate_board

            models = {
                name: resolve_model(ref, self.paths.recipes)
                for name, ref in self.section_models.items()
            }
            self.typed.update(validate_board(self, models))
        return self.typed[section]

    @property
    def _check_cache(self) -> Path:
        return _check_cache(self.paths.build, self.file)

    def remember_checked(self, *keys: str) -> None:
        """Record that these contents passed, if the build directory has been made (a board
        that has never built leaves nothing behind: ``doit list`` writes nowhere)."""
        if set(keys) <= self.checked:
            return  # the usual no-op build: nothing new, nothing to write
        self.checked.update(keys)
        cache = self._check_cache
        if not cache.parent.is_dir():
            return
        with contextlib.suppress(OSError):  # only a cache: validating again next time is fine
            atomic_write(cache, json.dumps(sorted(keys)))

    @property
    def has_budget(self) -> bool:
        """Whether the board sets a size budget (``[rootfs] max_size``/``package_limits``,
        ``[image]``; fwbuild.sizes): without one, a build need not import the checks."""
        rootfs = self.data.get("rootfs", {})
        keys = rootfs.keys() if isinstance(rootfs, dict) else {"not a table"}
        return "image" in self.data or bool({"max_size", "package_limits", "not a table"} & keys)

    def variant(self, name: str) -> bool:
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise ConfigError(
                f"{self.file}: variant {name!r} is used by a recipe but not set in [variants] "
                f"(known: {known}); add `{name} = true` or `false` to the board file"
            )
        return self.variants[name]


def _profiled(path: Path, profile: str | None, *, sibling: bool = False) -> Path:
    """A profile of a board (``[board] profile = "client"``) shares the build directory, so its
    packages are built once, but writes its rootfs and images beside the board's, not in them."""
    if not profile:
        return path
    if sibling and not path.name:  # "/": no sibling; the trees' rule refuses it (fwbuild.trees)
        raise ConfigError(
            f"ROOTFS_DIR or FWBUILD_OUTPUT_DIR is {path}, the root directory: the build replaces "
            "these directories whole and would delete it. Point them at new or empty directories "
            "of their own (or leave them unset for the defaults)"
        )
    return path.with_name(f"{path.name}-{profile}") if sibling else path / profile


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_board(file: Path, chain: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """A board file and, with ``[board] extends = "other.toml"``, the files underneath it: each
    one's own data, the board itself first. A profile states only what differs."""
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
    board = data.get("board", {})
    parent = board.get("extends") if isinstance(board, dict) else None
    if parent is None:
        return [(file, data)]
    if not isinstance(parent, str):
        raise ConfigError(f"{file}: [board] extends must be a file name (a string)")
    return [(file, data), *_read_board((file.parent / parent).resolve(), [*chain, file])]


def _merged(layers: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """The layers merged: tables key by key, everything else replaced by the file above."""
    merged: dict[str, Any] = {}
    for _, data in reversed(layers):
        merged = _merge(merged, data)
    if isinstance(merged.get("board"), dict):
        merged["board"].pop("extends", None)
    return merged


def _schema_code() -> str:
    """The schema's own code: a change to it checks every board again."""
    return hashlib.sha256(Path(__file__).with_name("schema.py").read_bytes()).hexdigest()


def _check_cache(build: Path, board_file: Path) -> Path:
    name = hashlib.sha256(str(board_file).encode()).hexdigest()[:16]
    return build / "stamps" / f"board-checked-{name}.json"


def validation_key(*parts: Any) -> str:
    """A digest of what validation depends on: the data, and the schema's code."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_checked(build: Path, board_file: Path) -> set[str]:
    try:
        return set(json.loads(_check_cache(build, board_file).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def load_board(file: Path, project: Path | None = None) -> Board:
    """Read a board file; paths are relative to ``project`` (default: two levels up)."""
    file = file.resolve()
    layers = _read_board(file, [])
    data = _merged(layers)
    project = (project or file.parent.parent).resolve()

    # The engine's sections are checked now, the recipes' once they are loaded (fwbuild.project).
    paths_raw = data.get("paths")
    raw_build = os.environ.get("FWBUILD_BUILD_DIR") or (
        paths_raw.get("build") if isinstance(paths_raw, dict) else None
    )
    build_guess = raw_build if isinstance(raw_build, str) and raw_build else "build"
    checked = _read_checked((project / build_guess).resolve(), file)
    engine_key = validation_key("engine", _schema_code(), data)
    if engine_key not in checked:
        from fwbuild.schema import validate_engine

        recipes = (data.get("paths") or {}).get("recipes") if isinstance(paths_raw, dict) else None
        validate_engine(
            data, layers, project / (recipes if isinstance(recipes, str) else "recipes")
        )

    # From here on the data has the schema's shape and types.
    board: dict[str, Any] = data["board"]
    target: dict[str, Any] = data["target"]
    variants: dict[str, bool] = data.get("variants", {})
    paths: dict[str, Any] = data.get("paths", {})
    mirrors: dict[str, Any] = data.get("mirrors", {})
    rootfs: dict[str, Any] = data.get("rootfs", {})

    def path(env: str, key: str, default: str) -> Path:
        raw = os.environ.get(env) or paths.get(key) or default
        return (project / raw).resolve()

    build = path("FWBUILD_BUILD_DIR", "build", "build")
    profile = board.get("profile")
    overrides = os.environ.get("FWBUILD_OVERRIDES")
    jobs_raw = os.environ.get("FWBUILD_JOBS") or str(board.get("jobs") or os.cpu_count() or 1)
    if not jobs_raw.isdigit() or int(jobs_raw) < 1:
        raise ConfigError(
            f"FWBUILD_JOBS / [board] jobs must be a positive integer, not {jobs_raw!r}"
        )
    primary = os.environ.get("FWBUILD_PRIMARY_MIRROR", mirrors.get("primary") or "")

    return Board(
        name=board["name"],
        file=file,
        packages=tuple(board.get("packages", [])),
        target=Target(
            arch=target["arch"],
            cpu=target["cpu"],
            libc=target["libc"],
            triplet=target["triplet"],
            cflags=tuple(target.get("cflags", [])),
            ldflags=tuple(target.get("ldflags", [])),
            toolchain=target.get("toolchain", "zig"),
            strip=target.get("strip"),
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
        backup_mirrors=tuple(m.rstrip("/") for m in mirrors.get("backup", [])),
        offline=env_flag("FWBUILD_OFFLINE", board.get("offline", False)),
        overrides_file=Path(overrides).expanduser().resolve() if overrides else None,
        jobs=int(jobs_raw),
        overlay=(project / rootfs["overlay"]).resolve() if rootfs.get("overlay") else None,
        toolchains=data.get("toolchains", {}),
        aliases=data.get("tasks", {}),
        permissions=(project / rootfs["permissions"]).resolve()
        if rootfs.get("permissions")
        else None,
        data=data,
        layers=tuple(layers),
        checked=checked,
        engine_key=engine_key,
    )
