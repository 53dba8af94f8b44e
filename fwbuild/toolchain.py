"""Cross toolchains: the environment a package builds with, and an identity for its stamps.

The userland (``target``) toolchain is, by default, zig's clang + musl from the ``ziglang`` wheel:
hermetic (it never looks at the host's headers or libraries) and able to target any CPU. A board
can name a GNU cross gcc instead (``[target] toolchain = "NAME"`` with ``[toolchains.NAME] kind =
"gcc"``), for targets where zig's runtime falls short: :class:`GccTargetToolchain`. Either way
packages get ``-Os``, the board's ``cflags``, ``-static`` and its ``ldflags``, and the identity
(compiler version, target, CPU, flags, the strip tool) is part of every package's stamp, so
changing any of them rebuilds.

zig ships no ``strip``, and the host's binutils strip reads only the host's ELF machines (on a
non-x86 target it fails: "file format not recognized"). The target's strip is ``llvm-strip``
(Debian's ``llvm``), which handles every ELF machine, or the one a board names
(``[target] strip``; a GNU toolchain defaults to its own ``<prefix>strip``). ``doit toolchain``
strips an object built for the target, so a strip that cannot read it fails there, by name.

Compilers are reached through small wrapper scripts in the build directory
(``<triplet>-cc`` …) because many old configure scripts and Makefiles cannot cope with a
multi-word ``CC``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fwbuild.errors import ConfigError
from fwbuild.fsutil import atomic_write

if TYPE_CHECKING:
    from fwbuild.config import Target


@cache
def _zig_version() -> str | None:
    """The installed ziglang's version, asked once per process (importlib's metadata lookup
    scans every distribution of the environment: most of a no-op when asked per key). Read from
    the ``Version:`` line of the dist-info beside the imported package when there is exactly
    one; importlib's answer otherwise."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ziglang")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        infos = list(Path(location).parent.glob("ziglang-*.dist-info"))
        if len(infos) != 1:
            break
        try:
            with open(infos[0] / "METADATA", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():
                        break  # the headers end at the first blank line
        except OSError:
            break
    try:
        return metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str


class Toolchain(Protocol):
    @property
    def triplet(self) -> str: ...  # read-only: toolchains are frozen dataclasses

    def identity(self) -> dict[str, object]: ...
    def problems(self) -> list[Problem]: ...
    def env(self) -> dict[str, str]: ...
    def warm_up(self) -> str: ...


# The strip for zig's targets: zig ships none, and binutils' strip reads only the host's ELF.
DEFAULT_STRIP = "llvm-strip"
STRIP_INSTALL = "apt-get install llvm (scripts/setup-debian installs it)"
_VERSIONS: dict[tuple[str, str], dict[str, str]] = {}


def _tool_versions(
    commands: dict[str, list[str]], cache_file: Path, lines: int = 1
) -> dict[str, str]:
    """The first line(s) each command prints (``gcc --version`` …), cached per binary (path,
    size, mtime) in ``cache_file`` and in this process: a no-change build must not spawn
    compilers just to learn that nothing changed."""
    stats = []
    for argv in commands.values():
        st = os.stat(argv[0])
        stats.append(f"{argv[0]}:{st.st_size}.{st.st_mtime_ns}")
    probe = "|".join([*stats, *(" ".join(a[1:]) for a in commands.values())])
    if lines != 1:
        probe += f"|{lines} lines"
    memo = (str(cache_file), probe)
    if memo in _VERSIONS:
        return _VERSIONS[memo]
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    if probe not in cached:
        cached[probe] = {name: _first_line(argv, lines) for name, argv in commands.items()}
        # Only a cache: asking again next time is fine. Written only into a build directory
        # that exists: loading a board that has never built (doit list) leaves nothing behind.
        with contextlib.suppress(OSError):
            if not cache_file.parent.parent.is_dir():
                raise FileNotFoundError(cache_file.parent.parent)
            cache_file.parent.mkdir(exist_ok=True)
            atomic_write(cache_file, json.dumps(cached, indent=1))
    _VERSIONS[memo] = cached[probe]
    return cached[probe]


def _write_wrappers(bindir: Path, triplet: str, commands: dict[str, str], preamble: str) -> None:
    """``<triplet>-<tool>`` scripts (idempotent; rewritten only when their text changes)."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name, body in commands.items():
        path = bindir / f"{triplet}-{name}"
        text = f"#!/bin/sh\n# written by fwbuild: the target toolchain\n{preamble}{body}\n"
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text, mode=0o755)


@dataclass(frozen=True, kw_only=True)
class _TargetToolchain:
    """What the userland toolchains share: the board's target, flags, strip and wrappers."""

    arch: str
    cpu: str
    libc: str
    triplet: str  # what configure scripts are told (--host)
    bindir: Path
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    # The board's [target] strip; None: the toolchain's own choice (``default_strip``).
    strip: str | None = None

    # --- to be given by each kind --------------------------------------------------------
    def default_strip(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """The compiler and its target, for messages."""
        raise NotImplementedError

    def wrapper_commands(self) -> dict[str, str]:
        raise NotImplementedError

    def wrapper_preamble(self) -> str:
        return ""

    def compiler_identity(self) -> dict[str, object]:
        raise NotImplementedError

    def compiler_problems(self) -> list[Problem]:
        raise NotImplementedError

    def extra_env(self) -> dict[str, str]:
        return {}

    def kernel_headers(self) -> Path | None:
        """The Linux UAPI headers (``linux/pfkeyv2.h`` …) the C library is built against, for
        packages that ask for them by path (``--with-kernel-headers``)."""
        raise NotImplementedError

    # --- shared ----------------------------------------------------------------------------
    @property
    def identity_cache(self) -> Path:
        return self.bindir.parent / "target-identity.json"

    def strip_command(self) -> str:
        return self.strip or self.default_strip()

    def strip_binary(self) -> str | None:
        return shutil.which(self.strip_command())

    def strip_identity(self) -> dict[str, object]:
        binary = self.strip_binary()
        if binary is None:
            return {"command": self.strip_command(), "missing": True}
        # Not resolved: llvm-strip is a link to llvm-objcopy, which acts by the name it is run as.
        # llvm-strip's first line names no version ("llvm-strip, compatible with GNU strip")
        version = _tool_versions({"version": [binary, "--version"]}, self.identity_cache, lines=3)
        return {"command": self.strip_command(), "path": binary, **version}

    def identity(self) -> dict[str, object]:
        """Everything about the toolchain that changes its output; hashed into stamps."""
        return {
            **self.compiler_identity(),
            "target": f"{self.arch}-linux-{self.libc}",
            "cpu": self.cpu,
            "triplet": self.triplet,
            "cflags": list(self.cflags),
            "ldflags": list(self.ldflags),
            "strip": self.strip_identity(),
        }

    def problems(self) -> list[Problem]:
        found = self.compiler_problems()
        if shutil.which("make") is None:
            found.append(Problem("`make` is not on PATH", "apt-get install make"))
        if self.strip_binary() is None:
            fix = (
                STRIP_INSTALL
                if self.strip_command() == DEFAULT_STRIP
                else f"install it, or set [target] strip to a strip that reads {self.arch} ELF "
                f"files (e.g. {DEFAULT_STRIP}: {STRIP_INSTALL})"
            )
            found.append(
                Problem(
                    f"`{self.strip_command()}`, the strip for the target's {self.arch} ELF files,"
                    " is not on PATH",
                    fix,
                )
            )
        return found

    def check(self) -> None:
        problems = self.problems()
        if problems:
            lines = "; ".join(f"{p.what} (fix: {p.fix})" for p in problems)
            raise ConfigError(f"the target toolchain for {self.triplet} is not usable: {lines}")

    def tool(self, name: str) -> Path:
        return self.bindir / f"{self.triplet}-{name}"

    def ensure_wrappers(self) -> None:
        commands = self.wrapper_commands()
        if self.ldflags:
            for name in ("cc", "gcc", "c++"):
                commands[name] = self._linking(commands[name])
        strip = self.strip_binary() or self.strip_command()
        commands["strip"] = f'exec "{strip}" "$@"'
        _write_wrappers(self.bindir, self.triplet, commands, self.wrapper_preamble())

    def _linking(self, command: str) -> str:
        """The compiler's wrapper with the board's ldflags added to every link it does.

        Not (only) in LDFLAGS: many old Makefiles link without it, and recipes empty it to keep
        the host's flags out (ppp's does), so a flag the target needs at every link (zig's
        ARMv5 runtime needs GNU's atomic helpers, see configs/armv5te.toml) would miss some.
        A command with -c, -S, -E or -M links nothing and gets nothing."""
        flags = " ".join(shlex.quote(f) for f in self.ldflags)
        return (
            'for arg in "$@"; do\n'
            '  case "$arg" in -c|-S|-E|-M|-MM) ' + command + " ;; esac\n"
            "done\n" + command + " " + flags
        )

    def env(self) -> dict[str, str]:
        self.ensure_wrappers()
        return {
            "CC": str(self.tool("cc")),
            "CXX": str(self.tool("c++")),
            "CPP": str(self.tool("cpp")),
            "AR": str(self.tool("ar")),
            "RANLIB": str(self.tool("ranlib")),
            "STRIP": str(self.tool("strip")),
            "OBJCOPY": str(self.tool("objcopy")),
            "CFLAGS": " ".join(["-Os", *self.cflags]),
            # the ldflags ride on the compiler's wrapper, to every link (_linking)
            "LDFLAGS": "-static",
            "CROSS_TRIPLET": self.triplet,
            **self.extra_env(),
        }

    def check_build(self, work: Path) -> None:
        """Build a trivial program as the packages are built (flags included) and strip copies
        with the target's strip: a compiler that cannot build for the target, or a strip that
        cannot read its ELF files (the host's binutils strip on a non-x86 target), fails here,
        named, before any package is built. The object is compiled and stripped before the
        program is linked, so a wrong strip is found without waiting for a libc to build."""
        from fwbuild.steps import error_excerpt  # steps names the Toolchain type: no cycle

        self.ensure_wrappers()
        src = work / "warmup.c"
        src.write_text("int main(void) { return 0; }\n")
        obj, program = work / "warmup.o", work / "warmup"
        env = {**os.environ, **self.extra_env()}
        cc = [str(self.tool("cc")), "-Os", *self.cflags]
        for argv, built in (
            ([*cc, "-c", "-o", str(obj), str(src)], obj),
            ([*cc, "-static", "-o", str(program), str(src)], program),  # + ldflags: wrapper
        ):
            result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
            if result.returncode != 0:
                raise ConfigError(
                    f"the target compiler {self.tool('cc')} ({self.describe()}, cflags "
                    f"{list(self.cflags)}, ldflags {list(self.ldflags)}) cannot build a trivial "
                    "static program; check [target] in the board file and the toolchain's "
                    "installation. It said:\n" + error_excerpt(result.stdout + result.stderr)
                )
            self._check_strip(built)

    def _check_strip(self, built: Path) -> None:
        from fwbuild.steps import error_excerpt

        copy = built.with_name(built.name + ".stripped")
        shutil.copyfile(built, copy)
        result = subprocess.run(
            [str(self.tool("strip")), str(copy)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ConfigError(
                f"the strip tool `{self.strip_command()}` cannot strip a {self.arch} ELF file "
                f"built for {self.triplet} (BusyBox's build and the rootfs strip every "
                f"binary with it). Use a strip that reads {self.arch} ELF files: leave "
                f"[target] strip unset for {DEFAULT_STRIP} ({STRIP_INSTALL}), or name "
                "binutils' strip for this target. It said:\n"
                + error_excerpt(result.stdout + result.stderr)
            )


@dataclass(frozen=True, kw_only=True)
class ZigToolchain(_TargetToolchain):
    """zig cc for ``<arch>-linux-<libc>`` with ``-mcpu``; wrappers live in ``bindir``."""

    cache_dir: Path = field(
        default_factory=lambda: Path(
            os.environ.get("ZIG_GLOBAL_CACHE_DIR", Path.home() / ".cache" / "zig")
        )
    )

    @property
    def zig_target(self) -> str:
        return f"{self.arch}-linux-{self.libc}"

    @staticmethod
    def zig_version() -> str | None:
        return _zig_version()

    @staticmethod
    def zig_binary() -> Path | None:
        try:
            import ziglang
        except ImportError:
            return None
        path = Path(ziglang.__file__).parent / "zig"
        return path if path.exists() else None

    def default_strip(self) -> str:
        return DEFAULT_STRIP

    def describe(self) -> str:
        return f"zig {self.zig_version()} for {self.zig_target} -mcpu={self.cpu}"

    def compiler_identity(self) -> dict[str, object]:
        return {"kind": "zig", "zig": self.zig_version()}

    def compiler_problems(self) -> list[Problem]:
        if self.zig_binary() is not None:
            return []
        return [
            Problem(
                "the zig compiler (PyPI package ziglang) is not installed",
                "run scripts/setup-debian: it installs ziglang into this checkout's .venv/; "
                "then run .venv/bin/doit",
            )
        ]

    def wrapper_preamble(self) -> str:
        return f'export ZIG_GLOBAL_CACHE_DIR="{self.cache_dir}"\n'

    def wrapper_commands(self) -> dict[str, str]:
        zig = self.zig_binary()
        if zig is None:
            self.check()
        cc = f'exec "{zig}" cc -target {self.zig_target} -mcpu={self.cpu}'
        return {
            "cc": f'{cc} "$@"',
            "gcc": f'{cc} "$@"',
            "c++": f'exec "{zig}" c++ -target {self.zig_target} -mcpu={self.cpu} "$@"',
            "cpp": f'{cc} -E "$@"',
            "ar": f'exec "{zig}" ar "$@"',
            "ranlib": f'exec "{zig}" ranlib "$@"',
            "objcopy": f'exec "{zig}" objcopy "$@"',
        }

    def extra_env(self) -> dict[str, str]:
        return {"ZIG_GLOBAL_CACHE_DIR": str(self.cache_dir)}

    def kernel_headers(self) -> Path | None:
        zig = self.zig_binary()
        return zig.parent / "lib" / "libc" / "include" / "any-linux-any" if zig else None

    def warm_marker(self) -> Path:
        """Written into zig's cache once its libc for this target is built: clearing the cache
        clears it too, so the next warm-up says again that it takes minutes.

        zig keeps a libc per installation (each checkout's .venv/ has its own zig), so the
        installation's path is part of the name."""
        where = hashlib.sha256(str(self.zig_binary()).encode()).hexdigest()[:12]
        name = f"fwbuild-warm-{self.zig_version()}-{self.zig_target}-{self.cpu}-{where}"
        return self.cache_dir / name

    def warm_up(self) -> str:
        """Compile a trivial program so zig builds (and caches) its libc for this CPU once, and
        check that the target's strip reads what it builds.

        The first time takes minutes with no output from zig, so it says so before and after
        (flushed: doit shows the toolchain task's output as it comes)."""
        self.ensure_wrappers()
        marker = self.warm_marker()
        cold = not marker.exists()
        if cold:
            print(
                f"toolchain: building zig's musl libc cache for {self.cpu} ({self.zig_target}) "
                f"once for this zig ({self.zig_binary()}) on this machine, in {self.cache_dir}; "
                "this takes a few minutes…",
                flush=True,
            )
        started = time.monotonic()
        self.check_build(self.bindir)
        seconds = time.monotonic() - started
        if cold:
            print(f"toolchain: zig's libc cache is ready after {seconds:.0f} s", flush=True)
            # only the message depends on it: without it the next warm-up says "minutes" again
            with contextlib.suppress(OSError):
                marker.write_text(f"{self.zig_target} -mcpu={self.cpu}: built by fwbuild\n")
        return f"{self.describe()}: ok (strip: {self.strip_command()})"


@dataclass(frozen=True, kw_only=True)
class GccTargetToolchain(_TargetToolchain):
    """A GNU cross gcc (``arm-linux-gnueabi-gcc``: Debian's ``gcc-arm-linux-gnueabi``) as the
    userland toolchain, chosen by the board alone (``[target] toolchain = "NAME"``, ``[toolchains.
    NAME] kind = "gcc"``), for targets where zig's runtime falls short (armv5te has no atomic
    instructions, and zig's runtime lacks the ``__sync_*`` helpers gcc's libgcc has).

    The C library is the one the compiler comes with (Debian's: glibc). ``cpu`` is recorded,
    but gcc spells CPU options per architecture (``-mcpu=`` on ARM, ``-march=`` on x86 and
    MIPS), so the board's ``cflags`` carry them. Its identity is gcc's and the assembler's
    version text and the machine gcc targets (``-dumpmachine``)."""

    prefix: str
    install_hint: str

    def _binary(self, tool: str) -> str | None:
        return shutil.which(self.prefix + tool)

    def default_strip(self) -> str:
        return self.prefix + "strip"  # binutils for the same target comes with the compiler

    def describe(self) -> str:
        return str(self.compiler_identity().get("gcc") or f"{self.prefix}gcc (missing)")

    def compiler_identity(self) -> dict[str, object]:
        gcc, as_ = self._binary("gcc"), self._binary("as")
        if gcc is None or as_ is None:
            return {"kind": "gcc", "prefix": self.prefix, "missing": True}
        versions = _tool_versions(
            {
                "gcc": [gcc, "--version"],
                "as": [as_, "--version"],
                "machine": [gcc, "-dumpmachine"],
            },
            self.identity_cache,
        )
        return {"kind": "gcc", "prefix": self.prefix, **versions}

    def compiler_problems(self) -> list[Problem]:
        tools = ("gcc", "as", "ld", "ar", "ranlib", "objcopy")
        missing = [self.prefix + t for t in tools if self._binary(t) is None]
        if not missing:
            return []
        what = f"the target's GNU cross toolchain {self.prefix}* is missing {', '.join(missing)}"
        return [Problem(what, self.install_hint)]

    def wrapper_commands(self) -> dict[str, str]:
        def run(tool: str, extra: str = "") -> str:
            return f'exec "{self._binary(tool) or self.prefix + tool}"{extra} "$@"'

        return {
            "cc": run("gcc"),
            "gcc": run("gcc"),
            "c++": run("g++"),
            "cpp": run("gcc", " -E"),
            "ar": run("ar"),
            "ranlib": run("ranlib"),
            "objcopy": run("objcopy"),
        }

    def kernel_headers(self) -> Path | None:
        """``<sysroot>/usr/include``, or, for a toolchain without a sysroot (Debian's cross
        compilers), ``<prefix dir>/<machine>/include`` (``/usr/arm-linux-gnueabi/include``)."""
        gcc = self._binary("gcc")
        if gcc is None:
            return None
        sysroot = _first_line([gcc, "-print-sysroot"])
        if sysroot and sysroot != "/":
            return Path(sysroot) / "usr" / "include"
        machine = _first_line([gcc, "-dumpmachine"]) or self.prefix.rstrip("-")
        return Path(os.path.realpath(gcc)).parent.parent / machine / "include"

    def warm_up(self) -> str:
        self.check_build(self.bindir)
        return f"{self.describe()} for {self.triplet}: ok (strip: {self.strip_command()})"


TargetToolchain = ZigToolchain | GccTargetToolchain


def target_toolchain(
    target: Target, toolchains: dict[str, dict[str, Any]], bindir: Path, board_file: Path
) -> TargetToolchain:
    """The board's userland toolchain: zig (``[target] toolchain`` unset or ``"zig"``), or the
    GNU cross gcc of the ``[toolchains.NAME]`` it names."""
    common: dict[str, Any] = {
        "arch": target.arch,
        "cpu": target.cpu,
        "libc": target.libc,
        "triplet": target.triplet,
        "bindir": bindir,
        "cflags": tuple(target.cflags),
        "ldflags": tuple(target.ldflags),
        "strip": target.strip,
    }
    name = target.toolchain
    if name == "zig":
        return ZigToolchain(**common)
    spec = toolchains.get(name)
    if not isinstance(spec, dict) or spec.get("kind") != "gcc":
        known = ", ".join(sorted(toolchains)) or "none"
        raise ConfigError(
            f'{board_file}: [target] toolchain = "{name}" names no [toolchains.{name}] of '
            f'kind "gcc" (the board defines: {known}); use "zig" (the default) or add '
            f'[toolchains.{name}] with kind = "gcc" and prefix = "<triplet>-"'
        )
    prefix = spec["prefix"]
    return GccTargetToolchain(
        **common,
        prefix=prefix,
        install_hint=spec.get("install") or f"install {prefix}gcc",
    )


def build_triplet() -> str:
    machine = os.uname().machine
    return f"{machine}-pc-linux-gnu"


@dataclass(frozen=True)
class GccToolchain:
    """A GNU cross toolchain found on PATH by its prefix (``i686-linux-gnu-``), e.g. for kernels.

    Its identity is the compiler's and the assembler's version text. Running them costs a few
    milliseconds each, so the answer is cached per binary (path, size, mtime) in ``cache_file``:
    a no-change build must not spawn compilers just to learn that nothing changed.
    """

    prefix: str
    install_hint: str
    cache_file: Path
    triplet: str = ""

    def _binary(self, tool: str) -> str | None:
        return shutil.which(self.prefix + tool)

    def identity(self) -> dict[str, object]:
        gcc, as_ = self._binary("gcc"), self._binary("as")
        if gcc is None or as_ is None:
            return {"kind": "gcc", "prefix": self.prefix, "missing": True}
        versions = _tool_versions(
            {"gcc": [gcc, "--version"], "as": [as_, "--version"]}, self.cache_file
        )
        return {"kind": "gcc", "prefix": self.prefix, **versions}

    def problems(self) -> list[Problem]:
        missing = [t for t in ("gcc", "ld", "as", "objcopy") if self._binary(t) is None]
        if not missing:
            return []
        names = ", ".join(self.prefix + t for t in missing)
        what = f"the cross toolchain {self.prefix}* is missing {names}"
        return [Problem(what, self.install_hint)]

    def env(self) -> dict[str, str]:
        return {"CROSS_COMPILE": self.prefix, "CC": self.prefix + "gcc"}

    def warm_up(self) -> str:
        return f"{self.prefix}gcc: {self.identity().get('gcc')}"


def _first_line(argv: list[str], lines: int = 1) -> str:
    """The first ``lines`` non-empty lines a command prints, joined with " / "."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = [line.strip() for line in (result.stdout or result.stderr).splitlines() if line.strip()]
    if result.returncode != 0 or not found:
        return ""
    return " / ".join(found[:lines])


@dataclass(frozen=True)
class NoToolchain:
    """For packages that compile nothing (configuration, certificates)."""

    triplet: str = ""

    def identity(self) -> dict[str, object]:
        return {"kind": "none"}

    def problems(self) -> list[Problem]:
        return []

    def env(self) -> dict[str, str]:
        return {}

    def warm_up(self) -> str:
        return "no toolchain needed"
