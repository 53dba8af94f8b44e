"""The commands a recipe declares instead of writing methods: ``Make``, ``Run``, ``Touch``, and
``File``, ``Variant``, with the placeholders their arguments may use.

A stage of a declarative recipe is a tuple of these (``build_steps = (Make("pppd", CC="{CC}"),)``),
run in order in the package's source tree, each logged like any other command. Arguments are
templates: ``{NAME}`` is replaced when the step runs by

    the toolchain's variables   {CC} {CFLAGS} {LDFLAGS} {AR} {RANLIB} {STRIP} {CROSS_COMPILE} …
                                (whatever the package's toolchain sets; CFLAGS already carries the
                                dependencies' include paths and the build-path prefix map)
    {SOURCE_DATE_EPOCH}         the build's timestamp
    {host} {build}              GNU triplets: the target's (the package's ``host``, derived from
                                the board: ``i586-pc-linux-gnu``) and the build machine's
    {prefix}                    the package's install prefix (``/usr``)
    {staging} {srcdir}          the package's DESTDIR and source tree
    {deps[openssl]}             a dependency's staging directory
    {kernel_headers}            the Linux UAPI headers the target toolchain ships (zig: its
                                ``any-linux-any`` headers), for ``--with-kernel-headers``
    {arch.linux_arch} …         the board's target under build systems' names (fwbuild.arch)
    {name} {version} {jobs}

``{{`` and ``}}`` are literal braces. A placeholder that is none of these is an error naming the
recipe, the step and the names it may use.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fwbuild.errors import ConfigError

if TYPE_CHECKING:
    from fwbuild.recipe import Package
    from fwbuild.steps import Context

_FORMATTER = string.Formatter()


def expand(template: str, values: Mapping[str, Any], *, where: str) -> str:
    """``template`` with its placeholders filled from ``values``; ``where`` names it in errors."""
    if "{" not in template and "}" not in template:
        return template
    try:
        return _FORMATTER.vformat(template, (), dict(values))
    except (KeyError, AttributeError, IndexError) as exc:
        known = ", ".join(f"{{{k}}}" for k in sorted(values))
        raise ConfigError(
            f"{where}: {template!r} uses the placeholder {exc} which is not defined here; the "
            f"names a step may use are {known} (a literal brace is written {{{{ or }}}})"
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {template!r} is not a valid template ({exc}); write a literal brace as "
            "{{ or }}"
        ) from None


def board_values(pkg: Package) -> dict[str, Any]:
    """What a template may name without a running stage: the package and the board's target."""
    return {"name": pkg.name, "version": pkg.version, "arch": pkg.arch, "host": pkg.host_triplet}


def kernel_headers(ctx: Context) -> str | None:
    """Where the target toolchain keeps the Linux UAPI headers, if it says."""
    headers = getattr(ctx.toolchain, "kernel_headers", None)
    if isinstance(headers, str | os.PathLike):
        return str(headers)
    zig_binary = getattr(ctx.toolchain, "zig_binary", None)
    zig = zig_binary() if callable(zig_binary) else None
    return str(zig.parent / "lib" / "libc" / "include" / "any-linux-any") if zig else None


def step_values(pkg: Package, ctx: Context) -> dict[str, Any]:
    """Everything a step's template may name (see the module docstring)."""
    headers = kernel_headers(ctx)
    return {
        **({"kernel_headers": headers} if headers else {}),
        **ctx.env,
        **board_values(pkg),
        "build": ctx.build_triplet,
        "prefix": getattr(pkg, "prefix", "/usr"),
        "staging": str(ctx.staging),
        "srcdir": str(ctx.srcdir),
        "deps": {name: str(path) for name, path in ctx.deps_staging.items()},
        "jobs": str(ctx.jobs),
    }


class Step:
    """One declared command of a stage. ``when``: a variant condition (``+mppc``), as for
    sources and patches."""

    when: str | None = None

    def run(self, pkg: Package, ctx: Context) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, init=False)
class Make(Step):
    """``make -C <directory> -j<jobs> VAR=value … <targets>``.

    The package's ``make_variables`` come first on the line, then the step's own (a later
    assignment wins in make). ``jobs=1`` for Makefiles that are not parallel-safe (install).
    ``input``: bytes fed to make's standard input (kconfig's ``oldconfig`` questions)."""

    directory: str
    targets: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]
    jobs: int | None
    when: str | None
    input: bytes | None

    def __init__(
        self,
        directory: str = ".",
        *targets: str,
        jobs: int | None = None,
        when: str | None = None,
        input: bytes | None = None,
        **variables: str,
    ) -> None:
        object.__setattr__(self, "directory", directory)
        object.__setattr__(self, "targets", tuple(targets))
        object.__setattr__(self, "variables", tuple(variables.items()))
        object.__setattr__(self, "jobs", jobs)
        object.__setattr__(self, "when", when)
        object.__setattr__(self, "input", input)

    def argv(self, pkg: Package, values: Mapping[str, Any]) -> list[str]:
        where = f"{pkg.recipe_file}: {self.describe()}"
        merged = {**dict(pkg.make_variables), **dict(self.variables)}
        args = ["make"]
        if self.directory not in ("", "."):
            args += ["-C", expand(self.directory, values, where=where)]
        args.append(f"-j{self.jobs or values['jobs']}")
        args += [f"{k}={expand(v, values, where=where)}" for k, v in merged.items()]
        args += [expand(t, values, where=where) for t in self.targets]
        return args

    def run(self, pkg: Package, ctx: Context) -> None:
        ctx.run(*self.argv(pkg, step_values(pkg, ctx)), input=self.input)

    def describe(self) -> str:
        where = "" if self.directory in ("", ".") else f" -C {self.directory}"
        own = " ".join(f"{k}={v}" for k, v in self.variables)
        return " ".join(x for x in (f"make{where}", own, " ".join(self.targets)) if x)


@dataclass(frozen=True, init=False)
class Run(Step):
    """A command in the source tree (or ``cwd`` inside it), arguments and ``env`` values as
    templates: ``Run("perl", "./Configure", "{arch.openssl_target}", "no-asm")``."""

    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    when: str | None
    input: bytes | None

    def __init__(
        self,
        *argv: str,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        when: str | None = None,
        input: bytes | None = None,
    ) -> None:
        object.__setattr__(self, "argv", tuple(argv))
        object.__setattr__(self, "cwd", cwd)
        object.__setattr__(self, "env", tuple((env or {}).items()))
        object.__setattr__(self, "when", when)
        object.__setattr__(self, "input", input)

    def run(self, pkg: Package, ctx: Context) -> None:
        values = step_values(pkg, ctx)
        where = f"{pkg.recipe_file}: {self.describe()}"
        argv = [expand(a, values, where=where) for a in self.argv]
        env = {k: expand(v, values, where=where) for k, v in self.env}
        cwd = ctx.srcdir / expand(self.cwd, values, where=where)
        ctx.run(*argv, cwd=cwd, env=env, input=self.input)

    def describe(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True, init=False)
class Touch(Step):
    """Bring files of the tree up to date (now), so make does not regenerate them: shipped
    parser and scanner outputs that patches edit along with their ``.y``/``.l``."""

    paths: tuple[str, ...]
    when: str | None

    def __init__(self, *paths: str, when: str | None = None) -> None:
        object.__setattr__(self, "paths", tuple(paths))
        object.__setattr__(self, "when", when)

    def run(self, pkg: Package, ctx: Context) -> None:
        for rel in self.paths:
            path = ctx.srcdir / rel
            if not path.is_file():
                raise ConfigError(
                    f"{pkg.recipe_file}: Touch names {rel}, which the source tree {ctx.srcdir} "
                    "does not have; fix the recipe's list",
                    package=pkg.name,
                )
            os.utime(path)

    def describe(self) -> str:
        return "touch " + " ".join(self.paths)


@dataclass(frozen=True)
class File:
    """One entry of a recipe's ``install_files``: ``staging path -> File(build-tree path, mode)``.

    ``rootfs=False``: staged for others (the image stage, a test) but not put into the rootfs.
    A plain ``(path, mode)`` tuple is a File with ``rootfs=True``."""

    src: str
    mode: int = 0o644
    rootfs: bool = True


@dataclass(frozen=True)
class Variant:
    """A board variant a recipe reads: ``variants = {"mppc": Variant("MPPC compression", True)}``.

    ``default`` is used when the board's ``[variants]`` leaves it out; None: the board must set
    it (a board without it is an error when the project loads)."""

    description: str
    default: bool | None = None
