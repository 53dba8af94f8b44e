"""The code that builds a package, as digests for its stage keys.

A recipe's steps run more code than the recipe file: helper modules beside it (``recipes/_x.py``,
imported at the top or only inside a method, and whatever those import) and the engine classes
it inherits from (``MakePackage.build`` in ``fwbuild/recipe.py``). An edit to any of them changes
what the package's stages produce, so a stage key that hashes only the recipe file would keep a
stale build. :func:`code_inputs` lists them all, each with the digest of its file:

- every module of the recipes directory the recipe imports, transitively, found by reading the
  ``import`` statements anywhere in each file (parsed with ``ast``; a function-local import
  counts the same as one at the top, and nothing is imported to find them);
- the modules of the recipes directory its settings models live in (``"_settings:Vpn"``);
- the file of every class in the recipe class's MRO that is defined in the engine package or in
  the recipes directory (derived from the MRO: a new package kind needs no list edited here).

Standard-library and third-party imports are not followed (they are part of the environment,
not of the project). Each version of a file is read and parsed once (a stat tells whether it
changed): a no-op build asks for every package's key, and packages share most of these files.
:func:`remember_in` keeps those digests in the build directory between runs, so a no-op reads
no code file at all, only stats it (the same test Python applies to its own bytecode caches,
made stricter with the inode and the change time, which no tool can set).
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import hashlib
import inspect
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import fwbuild

if TYPE_CHECKING:
    from fwbuild.recipe import Package

ENGINE_DIR = Path(fwbuild.__file__).resolve().parent

# file -> (its stat identity, sha256 of its bytes, module names its import statements name).
# Checked against a stat of the file, so a long-lived process (a test loading a project twice)
# never sees a digest of a file edited since; the bytes are read and parsed once per version.
_FILES: dict[str, tuple[tuple[int, ...], str, tuple[str, ...]]] = {}
_LOCAL: dict[tuple[str, str], str | None] = {}  # (recipes dir, module) -> its file, if there
_REAL: dict[str, str] = {}  # directory -> its real path
_CLASS_FILES: dict[str, str | None] = {}  # module name -> the real path of its file
_STORE: list[Path] = []  # where remember_in keeps _FILES between runs (at most one file)
_NEW: set[str] = set()  # files of _FILES read by this process, not yet stored
# A file changed twice within one tick of the file system's clock, to the same size, keeps its
# stat identity: an entry is only stored once its file has been left alone this long (as git
# treats its index's "racily clean" entries), so a stored digest is never of an earlier version.
_SETTLED_NS = 2_000_000_000
_STORE_VERSION = 1

# Import statements as they are written, one per match (a parenthesised name list may span
# lines), at any indentation: parsing only these is much cheaper than parsing the whole file.
_IMPORT_STATEMENT = re.compile(
    rb"(?m)^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)"
)
# Where an import statement can hide from that pattern: after ``;`` or ``:`` on one line
# (``if x: import y``), or continued with a backslash. Then the whole file is parsed.
_HIDDEN_IMPORT = re.compile(
    rb"(?m)[;:][ \t]*(?:import|from[ \t]+[\w.]+[ \t]+import)[ \t]"
    rb"|^[ \t]*(?:from|import)[ \t][^\n#]*\\\r?$"
)


def _read(path: str) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    st = os.stat(path)
    ident = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    found = _FILES.get(path)
    if found is None or found[0] != ident:
        with open(path, "rb") as fh:
            data = fh.read()
        imports = _imported_names(data, path) if path.endswith(".py") else ()
        found = _FILES[path] = (ident, hashlib.sha256(data).hexdigest(), imports)
        _NEW.add(path)
    return found


def remember_in(store: Path) -> None:
    """Keep the digests (and import lists) of the files read through :func:`file_digest` in
    ``store`` across runs: read it now, write what this process learns when it exits. An entry
    is used only while its file's stat identity (mtime, ctime, size, inode) is the one stored
    with it; a store that cannot be read is ignored, and one that cannot be written is left as
    it is (it only saves reading)."""
    if _STORE:
        return  # one store per process: the first project's build directory
    _STORE.append(store)
    try:
        data = json.loads(store.read_bytes())
        if data.get("version") == _STORE_VERSION:
            for path, (ident, digest, imports) in data["files"].items():
                if path not in _FILES:
                    _FILES[path] = (tuple(ident), digest, tuple(imports))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    atexit.register(_store)


def _store() -> None:
    # Never the one to make the build directory: `doit list` on a checkout that has never
    # built, or a build refused before it started, leaves nothing behind.
    if not _NEW or not _STORE or not _STORE[0].parent.is_dir():
        return
    import time

    from fwbuild.fsutil import atomic_write

    settled = time.time_ns() - _SETTLED_NS
    files = {
        path: [list(ident), digest, list(imports)]
        for path, (ident, digest, imports) in _FILES.items()
        # ident[1]: ctime, which any write to the file moves; a file gone (a patch removed, a
        # checkout deleted) is dropped, so the store does not grow with every file ever read
        if ident[1] < settled and (path in _NEW or os.path.exists(path))
    }
    if files:
        data = json.dumps({"version": _STORE_VERSION, "files": files}, separators=(",", ":"))
        with contextlib.suppress(OSError, ValueError):  # e.g. a read-only build directory
            atomic_write(_STORE[0], data, mode=0o600)
    _NEW.clear()


def flush() -> None:
    """Write the store now rather than at exit (fwbuild.noop: the rename changes the build
    directory, which a no-op's record holds); a second call writes nothing new."""
    _store()


def file_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read once per version of the file (and, with
    :func:`remember_in`, once across runs). Keys use it for their other small input files too:
    our patches, board files, the overlay, so that a no-op reads none of them."""
    return _read(os.fspath(path))[1]


def _imported_names(source: bytes, path: str) -> tuple[str, ...]:
    """Every module an ``import``/``from … import`` statement anywhere in the file names, with
    the submodule a ``from package import name`` may mean.

    The statements a pattern finds are parsed on their own, unless an import could hide from
    it (after ``;`` or ``:``, or a backslash continuation) or one of them does not parse: then
    the whole file is parsed, so nothing is missed. A statement-like line in a string is taken
    for one, which can only add a file to the key, never leave one out."""
    statements = _IMPORT_STATEMENT.findall(source)
    tree = None
    if not _HIDDEN_IMPORT.search(source):
        try:
            tree = ast.parse(b"\n".join(s.strip() for s in statements))
        except SyntaxError:
            tree = None
    if tree is None:
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError:
            return ()  # the recipe loader reports it; its digest still covers the file
    names: list[str] = []
    todo: list[ast.AST] = [tree]
    while todo:  # statements only: an import is never inside an expression
        node = todo.pop()
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module and not node.level:
                names.append(node.module)
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                todo += getattr(node, field, ())
    return tuple(names)


def _local_module(recipes_dir: str, name: str) -> str | None:
    """The file of module ``name`` in the recipes directory (which is on sys.path ahead of the
    rest while recipes load, so it wins there too), or None when it is not one of ours."""
    memo = (recipes_dir, name)
    if memo in _LOCAL:
        return _LOCAL[memo]
    base = os.path.join(recipes_dir, *name.split("."))
    found = None
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            found = candidate
            break
    _LOCAL[memo] = found
    return found


def _module_closure(first: Iterable[str], recipes_dir: str) -> dict[str, str]:
    """The files of the recipes directory reachable from ``first`` through import statements
    (a package's ``__init__`` included when one of its submodules is imported), with their
    digests."""
    seen: dict[str, str] = {}
    todo = list(first)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        _, seen[path], imports = _read(path)
        for name in imports:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c runs a/__init__, a/b/__init__, a/b/c
                found = _local_module(recipes_dir, ".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def _real_dir(directory: str) -> str:
    """A directory's real path, memoised: a no-op asks for every package's files, and resolving
    links costs a system call per path component."""
    real = _REAL.get(directory)
    if real is None:
        real = _REAL[directory] = os.path.realpath(directory)
    return real


def _real(path: str) -> str:
    """A file's path with its directory's real path (the file itself may be a link: its bytes
    are what counts, read through it)."""
    directory, name = os.path.split(path)
    return os.path.join(_real_dir(directory), name)


def _class_file(cls: type) -> str | None:
    if cls.__module__ in _CLASS_FILES:
        return _CLASS_FILES[cls.__module__]
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if path is None:
        try:
            path = inspect.getfile(cls)
        except TypeError:  # a built-in class (object)
            path = None
    found = _CLASS_FILES[cls.__module__] = _real(path) if path else None
    return found


def code_inputs(pkg: Package) -> list[list[str]]:
    """``[name, sha256]`` of every file of code that defines what the package's steps do, sorted;
    names are relative to the recipes directory (``recipes/…``) or the engine (``fwbuild/…``),
    so moving the project does not change them."""
    return files_digests(type(pkg), pkg.recipe_file, pkg.board.paths.recipes, pkg.settings)


def files_digests(
    cls: type, recipe_file: Path, recipes_dir: Path, settings: Mapping[str, object]
) -> list[list[str]]:
    """:func:`code_inputs` of a recipe class loaded from ``recipe_file``."""
    rdir = _real_dir(os.fspath(recipes_dir))
    engine = str(ENGINE_DIR)
    first = [_real(os.fspath(recipe_file))]
    for ref in settings.values():
        found = None
        if isinstance(ref, str):  # "module:Model", a module beside the recipes
            found = _local_module(rdir, ref.partition(":")[0])
        elif isinstance(ref, type):
            found = _class_file(ref)
        if found is not None and (_under(found, rdir) or _under(found, engine)):
            first.append(found)
    files = _module_closure(first, rdir)
    for klass in cls.__mro__:
        path = _class_file(klass)
        if path is not None and path not in files and (_under(path, engine) or _under(path, rdir)):
            files[path] = file_digest(path)
            if _under(path, engine):
                for module in _engine_top_imports(path):
                    files.setdefault(module, file_digest(module))
    rows = []
    for path, digest in files.items():
        if _under(path, rdir):
            shown = "recipes/" + path[len(rdir) + 1 :]
        elif _under(path, engine):
            shown = "fwbuild/" + path[len(engine) + 1 :]
        else:
            shown = path
        rows.append([shown, digest])
    return sorted(rows)


_TOP_IMPORTS: dict[str, frozenset[str]] = {}
# An import statement at the top level of a module starts in column 0 (one under TYPE_CHECKING or
# inside a function is indented).
_TOP_IMPORT = re.compile(rb"^(?:from|import)[ \t]+fwbuild\.([A-Za-z0-9_]+)", re.MULTILINE)


def _engine_top_imports(path: str) -> frozenset[str]:
    """The engine modules an engine class's file imports at its top level: the code its methods
    run besides its own, such as the declared ``Make`` steps (``fwbuild/commands.py``) and the
    target's names (``fwbuild/arch.py``) that the kinds in ``fwbuild/recipe.py`` use. One
    level: a module's own helpers are its business."""
    found = _TOP_IMPORTS.get(path)
    if found is None:
        with open(path, "rb") as fh:
            names = {m.decode() for m in _TOP_IMPORT.findall(fh.read())}
        candidates = (os.path.join(str(ENGINE_DIR), f"{name}.py") for name in sorted(names))
        found = frozenset(_real(c) for c in candidates if os.path.isfile(c))
        _TOP_IMPORTS[path] = found
    return found


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory + os.sep)
