"""The board file's schema: every section and key it may hold, with their types.

The engine declares its own sections here (``[board]``, ``[target]``, ``[variants]``, ``[paths]``,
``[mirrors]``, ``[rootfs]``, ``[image]``, ``[downloads]``, ``[cve]``, ``[cache]``, ``[kconfig]``,
``[toolchains.*]``, ``[tasks.*]``); a recipe declares the sections it reads as pydantic models
(``settings = {"vpn": "_settings:Vpn"}``, see :class:`fwbuild.recipe.Package`). A section that
neither declares, a key its model does not know, a string where a boolean belongs: each is an
error naming the file, the key and the nearest known one, all of them in one message, before
anything is built.

Validation is strict on purpose: TOML has real booleans, integers and lists, and coercing
``"no"`` to a boolean is how ``nat_traversal = "no"`` came to switch NAT-T *on*.

pydantic costs more to import than a no-op build takes, so this module is imported only when a
board (or its recipes' schema) has changed since it last validated: ``fwbuild.config`` keeps the
digest of what passed in the build directory (see :func:`fwbuild.config.validation_key`).

    python3 -m fwbuild.schema configs/siso.toml > configs/board.schema.json

writes the JSON Schema of a board (the engine's sections and its recipes'), for editors.
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
import string
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError

from fwbuild.errors import ConfigError
from fwbuild.recipe import DIGEST_LENGTHS

if typing.TYPE_CHECKING:
    from fwbuild.config import Board

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)(?:[iI]?[bB])?\s*$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a size string: ``"64M"``, ``"512K"``, ``"1.5G"``, ``"16MiB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "size",
            'must be a number of bytes or a size such as "512K", "64M" or "1G", not {value}',
            {"value": repr(value)},
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _size(value: Any) -> int | str:
    parse_size(value)
    return value  # validated, kept as written: the recipes and the engine parse it themselves


Size = Annotated[
    int | str,
    PlainValidator(_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _SIZE.pattern},
            ],
            "description": 'bytes, or a size such as "512K", "64M", "1G"',
        }
    ),
]


class Section(BaseModel):
    """A table of the board file: unknown keys are errors, types are not coerced."""

    # defer_build: a model is built when first used (the overrides file's only with one)
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class BoardTable(Section):
    name: str = Field(min_length=1, description="the board's name (rootfs stamp, PKI owner)")
    packages: list[str] = Field(default=[], description="what goes into the rootfs")
    extends: str | None = Field(default=None, description="a board file underneath this one")
    profile: str | None = Field(default=None, description="a profile's short name, e.g. client")
    jobs: int | None = Field(default=None, ge=1, description="make -j inside one package")
    offline: bool = Field(default=False, description="never touch the network")

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        if value is not None and not value.isidentifier():
            raise PydanticCustomError("profile", 'must be a short name, e.g. "client"')
        return value


class TargetTable(Section):
    arch: str = Field(min_length=1)
    cpu: str = Field(min_length=1)
    libc: str = Field(min_length=1)
    triplet: str = Field(min_length=1)
    cflags: list[str] = []
    ldflags: list[str] = []
    toolchain: str = Field(
        default="zig",
        min_length=1,
        description='the userland compiler: "zig", or a [toolchains.NAME] of kind "gcc"',
    )
    strip: str | None = Field(
        default=None,
        min_length=1,
        description="the strip for target ELF files (default: llvm-strip, or <prefix>strip)",
    )


class PathsTable(Section):
    build: str | None = None
    downloads: str | None = None
    rootfs: str | None = None
    output: str | None = None
    recipes: str | None = None
    patches: str | None = None
    pins: str | None = None


class MirrorsTable(Section):
    primary: str = ""
    backup: list[str] = []


class RootfsTable(Section):
    overlay: str | None = None
    permissions: str | None = None
    max_size: Size | None = Field(default=None, description="the rootfs's size budget")
    package_limits: dict[str, Size] = Field(
        default={}, description="package name -> its size budget in the rootfs"
    )


class ImageTable(Section):
    max_initramfs: Size | None = Field(default=None, description="the initramfs's size budget")


class DownloadsTable(Section):
    timeout: float | None = Field(default=None, gt=0, description="seconds a read may stall")
    deadline: float | None = Field(default=None, gt=0, description="seconds for one transfer")
    min_speed: int | None = Field(default=None, ge=0, description="bytes/s below which to give up")
    max_size: Size | None = Field(default=None, description="the largest file to accept")


class CveTable(Section):
    """``doit cve-check`` (fwbuild.cve)."""

    feed_url: str | list[str] | None = Field(
        default=None,
        description="NVD CVE API 2.0 JSON: an http(s) URL or a local path, or a list of them",
    )
    fail_on: Literal["none", "low", "medium", "high", "critical"] = Field(
        default="none", description="fail on an unpatched CVE of this severity or above"
    )


class CacheTable(Section):
    """The shared build cache (fwbuild.cache); FWBUILD_CACHE_DIR, _URL, _MODE override it."""

    dir: str | None = Field(default=None, description="a cache directory (shareable, NFS)")
    url: str | None = Field(
        default=None, description="a cache server taking HTTP GET/PUT (WebDAV, bazel-remote)"
    )
    mode: Literal["rw", "ro", "off"] = Field(
        default="rw", description="rw: read and write; ro: read only (CI mirrors); off"
    )
    ccache: bool = Field(
        default=False, description="ccache in front of the compilers (FWBUILD_CCACHE)"
    )


class ToolchainTable(Section):
    kind: Literal["gcc"]
    prefix: str = Field(min_length=1, description='the tools\' prefix, e.g. "i686-linux-gnu-"')
    install: str | None = Field(default=None, description="how to install it, for the error")


class KconfigFragment(Section):
    file: str = Field(min_length=1, description="a fragment file, relative to the project")
    when: str | None = Field(
        default=None, pattern=r"^[+~][A-Za-z0-9_-]+( [+~][A-Za-z0-9_-]+)*$",
        description="a variant condition: +variant, ~variant, space-separated AND",
    )  # fmt: skip


KconfigFragments = list[
    Annotated[str, Field(min_length=1, description="a fragment file, relative to the project")]
    | KconfigFragment
]


class TaskTable(Section):
    doc: str
    run: list[str]


class _Digests(Section):
    sha256: str | None = None
    sha512: str | None = None
    sha1: str | None = None
    md5: str | None = None

    @field_validator("sha256", "sha512", "sha1", "md5")
    @classmethod
    def _hex(cls, value: str | None, info: ValidationInfo) -> str | None:
        length = DIGEST_LENGTHS[str(info.field_name)]
        if value is not None and (len(value) != length or value.strip(string.hexdigits)):
            raise PydanticCustomError(
                "digest",
                "{value} is not a {algo} digest ({length} hex digits); copy the whole digest "
                "from `{algo}sum`",
                {"value": repr(value), "algo": info.field_name, "length": length},
            )
        return value


class PackageOverrideTable(_Digests):
    srcdir: str | None = Field(default=None, description="a source tree, copied fresh")
    tarball: str | None = Field(default=None, description="a tarball of your own (+ its digest)")


class FileOverrideTable(_Digests):
    path: str = Field(description="the local file used instead of the download (+ its digest)")


class OverridesFile(Section):
    """``FWBUILD_OVERRIDES``: local sources instead of downloads (fwbuild.overrides)."""

    packages: dict[str, PackageOverrideTable] = {}
    files: dict[str, FileOverrideTable] = {}


ENGINE_SECTIONS: dict[str, tuple[Any, Any]] = {
    "board": (BoardTable, ...),
    "target": (TargetTable, ...),
    "variants": (dict[str, bool], {}),
    "paths": (PathsTable, PathsTable()),
    "mirrors": (MirrorsTable, MirrorsTable()),
    "rootfs": (RootfsTable, RootfsTable()),
    "image": (ImageTable, ImageTable()),
    "downloads": (DownloadsTable, DownloadsTable()),
    "cve": (CveTable, CveTable()),
    "cache": (CacheTable, CacheTable()),
    "toolchains": (dict[str, ToolchainTable], {}),
    "tasks": (dict[str, TaskTable], {}),
    # package -> its Kconfig fragments, merged in order (fwbuild.kinds.KconfigPackage)
    "kconfig": (dict[str, KconfigFragments], {}),
}


# --- recipes' sections -------------------------------------------------------------------------
def resolve_model(ref: Any, recipes_dir: Path) -> type[BaseModel]:
    """A recipe's settings model: the class itself, or ``"module:Class"`` from the recipes
    directory (so that recipes do not import pydantic when nothing needs validating)."""
    if isinstance(ref, str):
        module_name, _, attr = ref.partition(":")
        if str(recipes_dir) not in sys.path:
            sys.path.insert(0, str(recipes_dir))
        ref = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(ref, type) and issubclass(ref, BaseModel)):
        raise TypeError(f"{ref!r} is not a pydantic model")
    return ref


def board_model(sections: Mapping[str, type[BaseModel]]) -> type[BaseModel]:
    """The whole board file: the engine's sections and the recipes'. A recipe's section with a
    key that has no default must be there; one whose keys all have defaults may be left out."""
    fields: dict[str, Any] = dict(ENGINE_SECTIONS)
    for name, model in sorted(sections.items()):
        required = any(f.is_required() for f in model.model_fields.values())
        fields[name] = (model, ...) if required else (model | None, None)
    return create_model(
        "Board",
        __config__=ConfigDict(extra="forbid", strict=True, title="fwbuild board file"),
        **fields,
    )


# --- errors ------------------------------------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    """``Model | None`` -> ``Model``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _model_at(model: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the table at ``loc`` (None: not a model), for "did you mean"."""
    in_dict = False
    for part in loc:
        if in_dict:  # the NAME of [toolchains.NAME]: the table's model stays the same
            in_dict = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _unwrap(field.annotation)
        if typing.get_origin(model) is dict:
            model, in_dict = _unwrap(typing.get_args(model)[1]), True
    if in_dict or not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return model


def _where(loc: tuple[Any, ...], data: Any) -> str:
    """``[section.sub] key`` for a location: the tables it is in, then the key."""
    table: list[str] = []
    node = data
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or isinstance(part, int):
            break
        table.append(_toml_key(part))
    rest = loc[len(table) :]
    if not table and len(loc) == 1:
        return f"[{loc[0]}]"
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{_toml_key(p)}" for p in rest)
    header = f"[{'.'.join(table)}]" if table else ""
    return f"{header} {key.lstrip('.')}".strip()


def _toml_key(part: Any) -> str:
    text = str(part)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _problem(
    err: Mapping[str, Any], known: list[str], owners: Mapping[str, list[str]] | None = None
) -> str:
    kind, value = err["type"], err.get("input")
    last = str(err["loc"][-1]) if err["loc"] else ""
    if kind == "extra_forbidden" and owners and len(err["loc"]) == 1 and last in owners:
        return (
            f"read only by recipe {', '.join(owners[last])}, which this board does not build; "
            "add the package to [board] packages or remove the section"
        )
    if kind == "extra_forbidden":
        what = (
            "unknown section: neither the engine nor a recipe of this board reads it"
            if len(err["loc"]) == 1
            else "unknown key"
        )
        close = difflib.get_close_matches(last, known, n=1, cutoff=0.6)
        if close:
            hint = f"[{close[0]}]" if len(err["loc"]) == 1 else close[0]
            return f"{what}, did you mean {hint}?"
        return f"{what} (known: {', '.join(known) or 'none'})"
    if kind == "missing":
        return "is missing"
    if kind == "bool_type":
        return f"must be true or false (a TOML boolean, no quotes), not {_describe(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, not {_describe(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, not {_describe(value)}"
    if kind == "string_type":
        return f"must be a string (in quotes), not {_describe(value)}"
    if kind == "list_type":
        return f'must be a list, e.g. ["a", "b"], not {_describe(value)}'
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a table, not {_describe(value)}"
    if kind == "literal_error":
        return f"must be {err['ctx']['expected']}, not {_describe(value)}"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    return str(err["msg"]).rstrip(".").replace("Input should be", "must be")


def _file_of(loc: tuple[Any, ...], layers: list[tuple[Path, dict[str, Any]]]) -> Path:
    """The topmost file of a board's chain that sets ``loc`` (a profile, or what it extends)."""
    for depth in range(len(loc), 0, -1):
        for file, raw in layers:
            node: Any = raw
            for part in loc[:depth]:
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return file
    return layers[0][0]


def key_error(key: str, message: str) -> PydanticCustomError:
    """For a model validator: an error about one key of its section (the message names it)."""
    return PydanticCustomError("board_key", "{message}", {"key": key, "message": message})


def format_errors(
    exc: ValidationError,
    model: type[BaseModel],
    data: dict[str, Any],
    layers: list[tuple[Path, dict[str, Any]]],
    *,
    what: str = "board file",
    hint: str = "",
    owners: Mapping[str, list[str]] | None = None,
) -> ConfigError:
    """pydantic's errors as one paragraph: file, ``[section] key``, what is wrong, did you mean."""
    errors = exc.errors()
    # "[toolchains.x] prefix is missing" says nothing "prefx: did you mean prefix?" does not
    suggested: set[tuple[str | int, ...]] = set()
    for err in errors:
        if err["type"] == "extra_forbidden" and len(err["loc"]) > 1:
            parent = _model_at(model, tuple(err["loc"][:-1]))
            close = difflib.get_close_matches(
                str(err["loc"][-1]), list(parent.model_fields) if parent else [], n=1, cutoff=0.6
            )
            suggested.update((*err["loc"][:-1], c) for c in close)
    items: list[tuple[Path, str]] = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and loc in suggested:
            continue
        key = (err.get("ctx") or {}).get("key")
        if key:  # a model validator's error about one of its keys
            loc = (*loc, key)
        known: list[str] = []
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
        where = _where(loc, data) or "the file"
        problem = _problem(err, known, owners)
        # "[vpn] mtu must be …" reads as a sentence; "[vpn] client_pool: 10.0.0.1 is …" needs the
        # colon to tell the key from the message
        sep = " " if problem.startswith(("must ", "is ", "needs ", "names ")) else ": "
        items.append((_file_of(loc, layers), f"{where}{sep}{problem}"))
    files = {file for file, _ in items}
    if len(files) == 1:  # the usual case: name the file once
        text = f"{items[0][0]}: " + "; ".join(t for _, t in items)
        text += f" ({len(items)} problems)" if len(items) > 1 else ""
    else:
        text = f"{len(items)} problems in the {what}: " + "; ".join(f"{f}: {t}" for f, t in items)
    text += "" if text.endswith((".", "?")) else "."
    return ConfigError(f"{text} {hint}".strip())


def validate(
    model: type[BaseModel],
    data: dict[str, Any],
    layers: list[tuple[Path, dict[str, Any]]],
    *,
    what: str = "board file",
    hint: str = "",
) -> BaseModel:
    try:
        return model.model_validate(data, context={"board": data})
    except ValidationError as exc:
        raise format_errors(exc, model, data, layers, what=what, hint=hint) from None


HINT = (
    "Fix the board file; `python3 -m fwbuild.schema BOARD` prints every section and key it may "
    "hold (its JSON Schema)."
)


def validate_engine(
    data: dict[str, Any], layers: list[tuple[Path, dict[str, Any]]], recipes_dir: Path
) -> None:
    """The engine's sections (the recipes, not loaded yet, declare the others). When they are
    wrong the whole board is checked, with the sections the named recipes declare, so that one
    message lists every problem rather than the first of several rounds."""
    model = create_model(  # type: ignore[call-overload]
        "EngineBoard", __config__=ConfigDict(extra="allow", strict=True), **ENGINE_SECTIONS
    )
    try:
        model.model_validate(data, context={"board": data})
    except ValidationError as exc:
        first = exc
    else:
        return
    try:
        full = board_model(_declared_sections(data, recipes_dir))
        full.model_validate(data, context={"board": data})
    except ValidationError as exc:
        raise format_errors(exc, full, data, layers, hint=HINT) from None
    except Exception:  # a broken recipe: its own error comes later; report the board's now
        pass
    raise format_errors(first, model, data, layers, hint=HINT) from None


def _declared_sections(data: dict[str, Any], recipes_dir: Path) -> dict[str, type[BaseModel]]:
    """The sections the board's recipes declare, found without a valid board (for the error
    message only: the project loads the recipes properly once the engine's sections are right)."""
    import importlib.util

    packages = (data.get("board") or {}).get("packages")
    todo = [p for p in packages if isinstance(p, str)] if isinstance(packages, list) else []
    seen: set[str] = set()
    found: dict[str, type[BaseModel]] = {}
    while todo:
        name = todo.pop()
        file = recipes_dir / f"{name}.py"
        if name in seen or not file.is_file():
            continue
        seen.add(name)
        if str(recipes_dir) not in sys.path:
            sys.path.insert(0, str(recipes_dir))
        spec = importlib.util.spec_from_file_location(f"fwbuild_recipes_scan.{name}", file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception:
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and getattr(obj, "name", None) == name:
                todo += [d for d in getattr(obj, "depends", ()) if isinstance(d, str)]
                for section, ref in dict(getattr(obj, "settings", {})).items():
                    found[section] = resolve_model(ref, recipes_dir)
    return found


def validate_board(board: Board, sections: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The whole board against the engine's and the recipes' models: the sections, typed."""
    model = board_model(sections)
    try:
        result = model.model_validate(board.data, context={"board": board.data})
    except ValidationError as exc:
        unknown = [e["loc"][0] for e in exc.errors() if e["type"] == "extra_forbidden"]
        owners = _owners(unknown, board.paths.recipes) if unknown else {}
        raise format_errors(
            exc, model, board.data, list(board.layers), hint=HINT, owners=owners
        ) from None
    return {name: getattr(result, name) for name in sections}


def _owners(sections: list[Any], recipes_dir: Path) -> dict[str, list[str]]:
    """Which recipes of the recipes directory (not on this board) declare these sections: a
    section left over from a package taken off the board is a different mistake from a typo."""
    names = [p.stem for p in sorted(recipes_dir.glob("*.py")) if not p.stem.startswith("_")]
    owners: dict[str, list[str]] = {}
    for name in names:
        try:
            declared = _declared_sections({"board": {"packages": [name]}}, recipes_dir)
        except Exception:
            continue
        for section in declared:
            if section in sections:
                owners.setdefault(section, []).append(name)
    return owners


class _TomlJsonSchema(GenerateJsonSchema):
    """TOML has no null: an optional key is one that may be left out, not one that may be null."""

    def nullable_schema(self, schema: Any) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: Any) -> JsonSchemaValue:
        result = super().default_schema(schema)
        # no null, and no default for a whole table (it would list its keys' defaults as null)
        if result.get("default", ...) is None or isinstance(result.get("default"), dict):
            del result["default"]
        return result


def json_schema(sections: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The JSON Schema of a board with these recipe sections (for editors: see README)."""
    schema = board_model(sections).model_json_schema(schema_generator=_TomlJsonSchema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def main(load: Callable[[Path], Any], argv: list[str] | None = None) -> int:
    """Print the JSON Schema of a board file (its engine and recipe sections) on stdout.

    ``load`` loads a project from a board file (``Project.load``): given by the caller, as the
    project sits above this module (it validates boards with it)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m fwbuild.schema BOARD.toml > board.schema.json", file=sys.stderr)
        return 2
    try:
        project = load(Path(args[0]))
        text = json.dumps(json_schema(project.section_models()), indent=2, ensure_ascii=False)
    except ConfigError as exc:
        print(f"fwbuild: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":  # the program itself, above every module: not part of the graph
    from fwbuild.project import Project

    raise SystemExit(main(Project.load))
