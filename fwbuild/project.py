"""A project: a board file, its recipes, pins and overrides, and what defines every stage.

Each stage of each package has a *key*: the SHA-256 of a JSON document listing everything that
defines the stage's output, including the key of the stage before it. A stage is up to date when
its stamp file holds the same key, so changing any input reruns exactly that stage and the ones
after it, in this package and in the packages that depend on it. Keys are computed from small
things (digests, patch files, recipe files, the toolchain's identity), never by walking a
source tree, so asking doit "is anything to do?" stays cheap.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fwbuild.codedigest import file_digest as input_digest
from fwbuild.config import Board, load_board, validation_key
from fwbuild.errors import ConfigError
from fwbuild.fsutil import file_digest
from fwbuild.overrides import Overrides, load_overrides, tree_fingerprint
from fwbuild.pins import Pins
from fwbuild.recipe import DIGEST_LENGTHS, Package, Source
from fwbuild.stages import BY_NAME, STAGES
from fwbuild.stamps import (  # stamps and keys are made there; these names are used from here
    ENGINE_STAMP_VERSION,
    digest_json,
    read_stamp,
    stamp_matches,
    write_stamp,
)
from fwbuild.toolchain import (
    GccToolchain,
    NoToolchain,
    TargetToolchain,
    Toolchain,
    target_toolchain,
)

__all__ = [
    "ENGINE_STAMP_VERSION",
    "STAGES",
    "Project",
    "digest_json",
    "read_stamp",
    "stamp_matches",
    "write_stamp",
]

_CLOSURE_MEMO = 2048  # closures remembered (the graphs ask for them repeatedly)


def _check_urls(cls: type[Package], file: Path) -> None:
    """Every URL a recipe lists is one the downloader can fetch: refused when it loads."""
    from fwbuild.urls import check_url

    for source in (*cls.sources, *cls.patches):
        if isinstance(source.urls, str):
            raise ConfigError(
                f"recipe {file}: {source.filename}: urls must be a tuple of URLs, not one "
                f'string; write urls=("{source.urls}",)'
            )
        for url in source.urls:
            check_url(url, where=f"recipe {file}: {source.filename}")


def load_recipe(recipes_dir: Path, name: str, board: Board, patches_dir: Path) -> Package:
    file = recipes_dir / f"{name}.py"
    if not file.exists():
        raise ConfigError(
            f"no recipe for package {name!r}: {file} does not exist; add it or remove the "
            "package from the board's [board] packages / the recipe's depends"
        )
    if str(recipes_dir) not in sys.path:  # recipes may share helper modules (recipes/_x.py)
        sys.path.insert(0, str(recipes_dir))
    module_name = f"fwbuild_recipes.{name}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken recipe must say which file
        raise ConfigError(f"recipe {file} failed to load: {type(exc).__name__}: {exc}") from exc
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Package)
        and obj.__module__ == module_name
        and getattr(obj, "name", None) == name
    ]
    if len(classes) != 1:
        raise ConfigError(
            f"recipe {file} must define exactly one Package subclass with name = {name!r} "
            f"(found {len(classes)})"
        )
    cls = classes[0]
    if not isinstance(getattr(cls, "version", None), str):
        raise ConfigError(f"recipe {file}: {cls.__name__}.version must be a string")
    _check_declarations(cls, file, board)
    _check_urls(cls, file)
    own = patches_dir / name / cls.version
    own_patches = tuple(
        sorted(p for p in own.glob("*.patch*") if p.suffix in {".patch", ".gz"})
        if own.is_dir()
        else ()
    )
    return cls(board=board, recipe_file=file, own_patches=own_patches)


def _check_declarations(cls: type[Package], file: Path, board: Board) -> None:
    """What a recipe declares, checked when it loads: digests are whole hex digests, ``when=``
    conditions are well formed and name variants the board sets (else the first task to ask
    fails deep inside doit)."""
    for decl in [*cls.sources, *cls.patches]:
        for algo, length in DIGEST_LENGTHS.items():
            value = getattr(decl, algo)
            if value is None:
                continue
            if (
                not isinstance(value, str)
                or len(value) != length
                or value.strip("0123456789abcdefABCDEF")
            ):
                shown = value if isinstance(value, str) else type(value).__name__
                raise ConfigError(
                    f"recipe {file}: {decl.filename}: {algo} {shown!r} is not a {algo} digest "
                    f"({length} hex digits); copy the whole digest from `{algo}sum` or the "
                    "upstream's published checksums",
                    package=cls.name,
                )
        for term in (decl.when or "").split():
            if term[:1] not in "+~" or len(term) < 2:
                raise ConfigError(
                    f"recipe {file}: {decl.filename}: when={decl.when!r}: {term!r} is not of the "
                    "form +variant or ~variant",
                    package=cls.name,
                )
    declared = set(cls.variants)
    steps = [*cls.configure_steps, *cls.build_steps, *(cls.install_steps or ())]
    whens = [d.when for d in [*cls.sources, *cls.patches]] + [s.when for s in steps]
    for when in whens:
        declared.update(term[1:] for term in (when or "").split())
    # a Variant(description, default) needs no board value
    variants = cls.variants if isinstance(cls.variants, Mapping) else {}
    defaulted = {n for n, v in variants.items() if getattr(v, "default", None) is not None}
    missing = sorted(declared - set(board.variants) - defaulted)
    if missing:
        known = ", ".join(sorted(board.variants)) or "none"
        raise ConfigError(
            f"recipe {file} uses variant(s) {', '.join(missing)} (in variants = (...) or a "
            f"when= condition), which {board.file} does not set in [variants] (it sets: "
            f"{known}); add `{missing[0]} = true` or `false` to [variants], or fix the "
            "recipe's spelling",
            package=cls.name,
        )
    if not isinstance(cls.settings, Mapping) or not all(
        isinstance(k, str) and ((isinstance(v, str) and ":" in v) or isinstance(v, type))
        for k, v in cls.settings.items()
    ):
        raise ConfigError(
            f'recipe {file}: settings must map a section name to a model: {{"vpn": Model}} or '
            '{"vpn": "module:Model"} (a module beside the recipes)',
            package=cls.name,
        )


def _source_digest(ref: Any, recipes_dir: Path) -> str:
    """The code behind a settings model: its module's file, without importing it."""
    if isinstance(ref, str):
        path = recipes_dir / (ref.partition(":")[0].replace(".", "/") + ".py")
    else:
        path = Path(inspect.getfile(ref))
    return input_digest(path) if path.is_file() else str(ref)


@dataclass
class Project:
    board: Board
    overrides: Overrides
    pins: Pins
    packages: dict[str, Package] = field(default_factory=dict)
    _keys: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _closures: dict[str, list[str]] = field(default_factory=dict, repr=False)
    # keys of dynamic packages, kept only while one outermost ``key()`` call computes
    _scratch: dict[tuple[str, str], str] | None = field(default=None, repr=False)
    _loaded_from: tuple[Path, Path | None] | None = field(default=None, repr=False)
    # The tasks named on doit's command line (fwbuild.report records them as a run starts): a
    # stage asked for by name is wanted for its tree, even where the build cache covers it.
    asked_for: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, board_file: Path, project_dir: Path | None = None) -> Project:
        board = load_board(board_file, project_dir)
        project = cls(
            board=board,
            overrides=load_overrides(board.overrides_file, board.checked),
            pins=Pins.load(board.paths.pins),
            _loaded_from=(board_file, project_dir),
        )
        from fwbuild.codedigest import remember_in

        # the digests of the code, patch, board and overlay files keys are made of, kept
        # between runs: a no-op reads none of them (fwbuild.codedigest)
        remember_in(board.paths.build / ".code-digests.json")
        project._load_packages()
        return project

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what loads it: doit (``-n``) sends a task made after its worker processes
        started (fwbuild.tasks.LaterTaskCreator's, e.g. ``dirclean:<pkg>``) to a worker whole,
        and a recipe's class cannot be pickled (its module is loaded from a file)."""
        if self._loaded_from is None:
            raise TypeError("only a project made by Project.load can be pickled")
        return (Project.load, self._loaded_from)

    # --- the board's schema ---------------------------------------------------------------------
    def section_models(self) -> dict[str, Any]:
        """The sections the loaded recipes declare, resolved to their pydantic models."""
        from fwbuild.schema import resolve_model

        found: dict[str, Any] = {}
        for name, ref in self.board.section_models.items():
            try:
                found[name] = resolve_model(ref, self.board.paths.recipes)
            except Exception as exc:  # a broken model must say which recipe declares it
                who = [str(p.recipe_file) for p in self.packages.values() if name in p.settings]
                raise ConfigError(
                    f"the model {ref!r} for [{name}] (declared by {', '.join(who)}) cannot be "
                    f"loaded: {type(exc).__name__}: {exc}"
                ) from exc
        return found

    def _check_board(self) -> None:
        """Every section of the board against the engine's and the recipes' models, unless these
        very contents (with this very schema code) passed before."""
        board, recipes_dir = self.board, self.board.paths.recipes
        owners: dict[str, Package] = {}
        for pkg in self.packages.values():
            for section, ref in pkg.settings.items():
                first = owners.setdefault(section, pkg)
                if first.settings[section] != ref:
                    raise ConfigError(
                        f"recipes {first.recipe_file} and {pkg.recipe_file} declare [{section}] "
                        f"with different models ({first.settings[section]!r}, {ref!r}); "
                        "share one model"
                    )
                board.section_models[section] = ref
        helpers = sorted(recipes_dir.glob("_*.py")) if recipes_dir.is_dir() else []
        key = validation_key(
            "board",
            board.engine_key,
            sorted(
                [s, str(ref), _source_digest(ref, recipes_dir)]
                for s, ref in board.section_models.items()
            ),
            [[p.name, input_digest(p)] for p in helpers],
        )
        if key not in board.checked:
            from fwbuild.schema import validate_board

            board.typed.update(validate_board(board, self.section_models()))
        board.remember_checked(
            board.engine_key, key, *([self.overrides.key] if self.overrides.key else [])
        )

    # --- recipes ---------------------------------------------------------------------------
    def _load_packages(self) -> None:
        from fwbuild.bytecode import use_checked_bytecode

        # an edit of a recipe or helper is always what runs (fwbuild.bytecode)
        if self.board.paths.recipes.is_dir():
            use_checked_bytecode(str(self.board.paths.recipes))
        # Depth first, dependencies before the packages that need them, without recursion: a
        # chain of thousands of recipes must not meet Python's recursion limit.
        visiting: list[str] = []  # the path from a board package down to the one loading
        on_path: set[str] = set()
        pending: list[tuple[Package, list[str]]] = []  # loaded, with dependencies still to visit

        def enter(name: str, wanted_by: str | None) -> None:
            if name in on_path:
                cycle = " -> ".join([*visiting[visiting.index(name) :], name])
                raise ConfigError(f"dependency cycle between recipes: {cycle}")
            try:
                pkg = load_recipe(self.board.paths.recipes, name, self.board, self.patches_dir)
            except ConfigError as exc:
                if wanted_by:
                    raise ConfigError(f"{exc} (needed by {wanted_by})") from None
                raise
            visiting.append(name)
            on_path.add(name)
            pending.append((pkg, list(reversed(pkg.depends))))

        for top in self.board.packages:
            if top in self.packages:
                continue
            enter(top, None)
            while pending:
                pkg, deps = pending[-1]
                if deps:
                    dep = deps.pop()
                    if dep not in self.packages:
                        enter(dep, pkg.name)
                    continue
                pending.pop()
                visiting.pop()
                on_path.discard(pkg.name)
                self.packages[pkg.name] = pkg
        self._check_board()
        used = set().union(*(p.used_variants() for p in self.packages.values()))
        unused = sorted(set(self.board.variants) - used)
        if unused:
            known = ", ".join(sorted(used)) or "none"
            raise ConfigError(
                f"{self.board.file}: [variants] {', '.join(unused)}: no recipe of this board "
                f"reads it (variants the recipes know: {known}); check the spelling or remove it"
            )
        for pkg in self.packages.values():
            self.toolchain_for(pkg)  # an unknown toolchain name is a board error, said now
            pkg.validate()
        unknown = set(self.overrides.packages) - set(self.packages)
        if unknown:
            raise ConfigError(
                f"{self.overrides.file}: overrides for package(s) {sorted(unknown)} that this "
                f"board does not build (it builds {sorted(self.packages)})"
            )

    @property
    def patches_dir(self) -> Path:
        return self.board.paths.patches

    @cached_property
    def order(self) -> dict[str, int]:
        """Every package's place in one topological order (dependencies first), made once:
        ``_load_packages`` adds a package only after everything it depends on."""
        return {name: i for i, name in enumerate(self.packages)}

    def closure(self, name: str) -> list[str]:
        """The package's dependencies, transitively, dependencies first.

        Iterative (a chain of thousands of packages must not hit Python's recursion limit) and
        linear in the size of the closure; the order is the project's one topological order."""
        found = self._closures.get(name)
        if found is None:
            seen: set[str] = set()
            todo = list(self.packages[name].depends)
            while todo:
                dep = todo.pop()
                if dep not in seen:
                    seen.add(dep)
                    todo.extend(self.packages[dep].depends)
            order = self.order
            found = sorted(seen, key=order.__getitem__)
            if len(self._closures) < _CLOSURE_MEMO:  # a deep chain's closures are quadratic
                self._closures[name] = found
        return list(found)

    # --- toolchain ---------------------------------------------------------------------------
    @cached_property
    def toolchain(self) -> TargetToolchain:
        """The userland cross compiler for the board's [target] (zig, or a GNU gcc)."""
        board = self.board
        bindir = board.paths.build / "toolchain" / "bin"
        return target_toolchain(board.target, board.toolchains, bindir, board.file)

    @cached_property
    def toolchains(self) -> dict[str, Toolchain]:
        found: dict[str, Toolchain] = {"target": self.toolchain, "none": NoToolchain()}
        for name, spec in self.board.toolchains.items():
            if spec.get("kind") != "gcc" or not isinstance(spec.get("prefix"), str):
                raise ConfigError(
                    f'{self.board.file}: [toolchains.{name}] needs kind = "gcc" and '
                    'prefix = "<triplet>-" (the only other kind the engine knows)'
                )
            found[name] = GccToolchain(
                prefix=spec["prefix"],
                install_hint=spec.get("install", f"install {spec['prefix']}gcc"),
                cache_file=self.board.paths.build / "toolchain" / f"{name}-identity.json",
                triplet=spec["prefix"].rstrip("-"),
            )
        return found

    def toolchain_for(self, pkg: Package) -> Toolchain:
        try:
            return self.toolchains[pkg.toolchain]
        except KeyError:
            raise ConfigError(
                f"{pkg.recipe_file}: toolchain {pkg.toolchain!r} is not defined; add "
                f"[toolchains.{pkg.toolchain}] to {self.board.file}",
                package=pkg.name,
            ) from None

    def used_toolchains(self) -> dict[str, Toolchain]:
        return {p.toolchain: self.toolchain_for(p) for p in self.packages.values()}

    # --- where things are --------------------------------------------------------------------
    def workdir(self, name: str) -> Path:
        return self.board.paths.build / name

    def srcdir(self, name: str) -> Path:
        return self.workdir(name) / "src"

    def stagingdir(self, name: str) -> Path:
        return self.workdir(name) / "staging"

    def stamp_path(self, name: str, stage: str) -> Path:
        return self.workdir(name) / "stamps" / f"{stage}.json"

    def stamp_file(self, name: str, stage: str) -> str:
        """``stamp_path`` as a string, made without pathlib: a no-op asks it of every stage of
        every package, and building a Path costs more than reading the stamp's first bytes."""
        return f"{self._build_dir}{os.sep}{name}{os.sep}stamps{os.sep}{stage}.json"

    @cached_property
    def _build_dir(self) -> str:
        return str(self.board.paths.build)

    def log_path(self, name: str, stage: str) -> Path:
        return self.workdir(name) / "logs" / f"{stage}.log"

    def local_source_dir(self, pkg: Package) -> Path | None:
        if pkg.local_source is None:
            return None
        path = self.board.paths.project / pkg.local_source
        if not path.is_dir():
            raise ConfigError(
                f"{pkg.recipe_file}: local_source {pkg.local_source} is not a directory under "
                f"{self.board.paths.project}",
                package=pkg.name,
            )
        return path

    def local_source_digest(self, pkg: Package) -> list[list[str]] | None:
        root = self.local_source_dir(pkg)
        if root is None:
            return None
        return [[p, file_digest(root / p)] for p, _, _ in tree_fingerprint(root)]

    def board_file(self, pkg: Package, rel: str) -> Path:
        path = self.board.paths.project / rel
        if not path.is_file():
            raise ConfigError(
                f"{pkg.recipe_file}: board file {rel} (in board_files) does not exist under "
                f"{self.board.paths.project}; create it or fix the name",
                package=pkg.name,
            )
        return path

    def remote_digests(self, source: Source) -> dict[str, str]:
        return source.digests() or self.pins.digests(source.filename)

    def local_file(self, source: Source) -> Path:
        """Where a source lives once fetched: its override, or the download directory."""
        from fwbuild.alternatives import chosen

        source = chosen(self, source)  # the recipe's file or the fallback that stands for it
        override = self.overrides.files.get(source.filename)
        if override:
            return override.path
        return self.board.paths.downloads / source.filename

    # --- keys --------------------------------------------------------------------------------
    @cached_property
    def _dynamic(self) -> dict[str, bool]:
        found: dict[str, bool] = {}
        for name, pkg in self.packages.items():  # dependencies first
            found[name] = pkg.dynamic or any(found[d] for d in pkg.depends)
        return found

    def is_dynamic(self, name: str) -> bool:
        """Whether the package (or one it depends on) has inputs its own steps can change."""
        return self._dynamic[name]

    def key(self, name: str, stage: str) -> str:
        """The stage's key; memoised, except where the inputs can change during a build.

        A key covers the install keys of the package's direct dependencies, which cover theirs:
        those are computed first, dependencies first and without recursion (a chain of
        thousands of packages), so computing any key is linear in the packages below it and
        free once they are known."""
        memo = (name, stage)
        found = self._keys.get(memo)
        if found is not None:
            return found
        scratch = self._scratch
        if scratch is not None and memo in scratch:
            return scratch[memo]
        outermost = scratch is None
        if scratch is None:
            scratch = self._scratch = {}
        try:
            if BY_NAME[stage].covers_deps:
                for dep in self._unkeyed_below(name, scratch):
                    self._key_now(dep, "install", scratch)
            return self._key_now(name, stage, scratch)
        finally:
            if outermost:
                self._scratch = None

    def _key_now(self, name: str, stage: str, scratch: dict[tuple[str, str], str]) -> str:
        memo = (name, stage)
        if memo in self._keys:
            return self._keys[memo]
        if memo in scratch:
            return scratch[memo]
        value = digest_json(self.stage_inputs(name, stage))
        if self.is_dynamic(name):
            scratch[memo] = value  # consistent within this computation only
        else:
            self._keys[memo] = value
        return value

    def _unkeyed_below(self, name: str, scratch: dict[tuple[str, str], str]) -> list[str]:
        """The dependencies (transitively) whose install key is not known yet, dependencies
        first; the walk stops at a known key (it covers everything below it)."""
        seen: set[str] = set()
        todo = [d for d in self.packages[name].depends]
        while todo:
            dep = todo.pop()
            if dep in seen or (dep, "install") in self._keys or (dep, "install") in scratch:
                continue
            seen.add(dep)
            todo.extend(self.packages[dep].depends)
        order = self.order
        return sorted(seen, key=order.__getitem__)

    def stage_inputs(self, name: str, stage: str) -> dict[str, Any]:
        """What defines the stage's output (``fwbuild.stages``): its key is their digest."""
        return BY_NAME[stage].inputs(self, name)

    @property
    def rootfs_inputs(self) -> dict[str, Any]:
        overlay = self.board.overlay
        return {
            "engine": ENGINE_STAMP_VERSION,
            "packages": {n: self.key(n, "install") for n in self.packages},
            "overlay": (
                [
                    [p, "link:" + os.readlink(overlay / p)]
                    if (overlay / p).is_symlink()
                    else [p, input_digest(overlay / p), (overlay / p).stat().st_mode & 0o7777]
                    for p, _, _ in tree_fingerprint(overlay)
                ]
                if overlay and overlay.is_dir()
                else None
            ),
            "permissions": input_digest(self.board.permissions)
            if self.board.permissions and self.board.permissions.exists()
            else None,
            "rootfs_dir": str(self.board.paths.rootfs),
            "output_dir": str(self.board.paths.output),
            "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", "0"),
            "genext2fs": shutil.which("genext2fs"),
        }

    @property
    def toolchain_key(self) -> str:
        """What the ``toolchain`` task checked: the identity of every toolchain in use."""
        return digest_json({n: t.identity() for n, t in sorted(self.used_toolchains().items())})

    @property
    def toolchain_stamp(self) -> Path:
        return self.board.paths.build / "stamps" / "toolchain.json"

    @property
    def report_path(self) -> Path:
        """The last build's report (``fwbuild.report``), which ``doit graph-build`` draws."""
        return self.board.paths.build / "report.json"

    @property
    def rootfs_key(self) -> str:
        return digest_json(self.rootfs_inputs)

    @property
    def rootfs_stamp(self) -> Path:
        # per board: profiles of one board may share a build directory (and its packages)
        return self.board.paths.build / "stamps" / f"rootfs-{self.board.name}.json"
