"""Cross toolchains: the environment a package builds with, and an identity for its stamps.

The userland toolchain is zig's clang + musl from the ``ziglang`` wheel: hermetic (it never looks at
the host's headers or libraries) and able to target any CPU. Its identity (zig version, target, CPU,
flags) is part of every package's stamp, so changing any of them rebuilds.

Compilers are reached through small wrapper scripts in the build directory
(``<triplet>-cc`` …) because many old configure scripts and Makefiles cannot cope with a
multi-word ``CC``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Protocol

from fwbuild.errors import ConfigError
from fwbuild.fsutil import atomic_write


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
    triplet: str

    def identity(self) -> dict[str, object]: ...
    def problems(self) -> list[Problem]: ...
    def env(self) -> dict[str, str]: ...
    def warm_up(self) -> str: ...


@dataclass(frozen=True)
class ZigToolchain:
    """zig cc for ``<arch>-linux-<libc>`` with ``-mcpu``; wrappers live in ``bindir``."""

    arch: str
    cpu: str
    libc: str
    triplet: str  # what configure scripts are told (--host)
    bindir: Path
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
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

    def identity(self) -> dict[str, object]:
        """Everything about the compiler that changes its output; hashed into stamps."""
        return {
            "kind": "zig",
            "zig": self.zig_version(),
            "target": self.zig_target,
            "cpu": self.cpu,
            "triplet": self.triplet,
            "cflags": list(self.cflags),
            "ldflags": list(self.ldflags),
        }

    def problems(self) -> list[Problem]:
        found: list[Problem] = []
        if self.zig_binary() is None:
            found.append(
                Problem(
                    "the zig compiler (PyPI package ziglang) is not installed",
                    "run scripts/setup-debian: it installs ziglang into this checkout's .venv/; "
                    "then run .venv/bin/doit",
                )
            )
        for tool, package in (("make", "make"), ("strip", "binutils")):
            if shutil.which(tool) is None:
                found.append(Problem(f"`{tool}` is not on PATH", f"apt-get install {package}"))
        return found

    def check(self) -> None:
        problems = self.problems()
        if problems:
            lines = "; ".join(f"{p.what} (fix: {p.fix})" for p in problems)
            raise ConfigError(f"the target toolchain for {self.triplet} is not usable: {lines}")

    def tool(self, name: str) -> Path:
        return self.bindir / f"{self.triplet}-{name}"

    def ensure_wrappers(self) -> None:
        """Write the wrapper scripts (idempotent; rewritten only when their text changes)."""
        zig = self.zig_binary()
        if zig is None:
            self.check()
            return
        cpu = f"-mcpu={self.cpu}"
        commands = {
            "cc": f'exec "{zig}" cc -target {self.zig_target} {cpu} "$@"',
            "gcc": f'exec "{zig}" cc -target {self.zig_target} {cpu} "$@"',
            "c++": f'exec "{zig}" c++ -target {self.zig_target} {cpu} "$@"',
            "cpp": f'exec "{zig}" cc -target {self.zig_target} {cpu} -E "$@"',
            "ar": f'exec "{zig}" ar "$@"',
            "ranlib": f'exec "{zig}" ranlib "$@"',
            "objcopy": f'exec "{zig}" objcopy "$@"',
            # zig's objcopy cannot strip i386 yet; binutils' strip handles every ELF class.
            "strip": f'exec "{shutil.which("strip") or "strip"}" "$@"',
        }
        self.bindir.mkdir(parents=True, exist_ok=True)
        for name, body in commands.items():
            path = self.tool(name)
            text = (
                "#!/bin/sh\n# written by fwbuild: the target toolchain\n"
                f'export ZIG_GLOBAL_CACHE_DIR="{self.cache_dir}"\n{body}\n'
            )
            if not path.exists() or path.read_text() != text:
                atomic_write(path, text, mode=0o755)

    def env(self) -> dict[str, str]:
        self.ensure_wrappers()
        cflags = ["-Os", *self.cflags]
        return {
            "CC": str(self.tool("cc")),
            "CXX": str(self.tool("c++")),
            "CPP": str(self.tool("cpp")),
            "AR": str(self.tool("ar")),
            "RANLIB": str(self.tool("ranlib")),
            "STRIP": str(self.tool("strip")),
            "OBJCOPY": str(self.tool("objcopy")),
            "CFLAGS": " ".join(cflags),
            "LDFLAGS": " ".join(["-static", *self.ldflags]),
            "ZIG_GLOBAL_CACHE_DIR": str(self.cache_dir),
            "CROSS_TRIPLET": self.triplet,
        }

    def warm_marker(self) -> Path:
        """Written into zig's cache once its libc for this target is built: clearing the cache
        clears it too, so the next warm-up says again that it takes minutes.

        zig keeps a libc per installation (each checkout's .venv/ has its own zig), so the
        installation's path is part of the name."""
        where = hashlib.sha256(str(self.zig_binary()).encode()).hexdigest()[:12]
        name = f"fwbuild-warm-{self.zig_version()}-{self.zig_target}-{self.cpu}-{where}"
        return self.cache_dir / name

    def warm_up(self) -> str:
        """Compile a trivial program so zig builds (and caches) its libc for this CPU once.

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
        src = self.bindir / "warmup.c"
        src.write_text("int main(void) { return 0; }\n")
        result = subprocess.run(
            [str(self.tool("cc")), "-static", "-o", str(self.bindir / "warmup"), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(
                f"the target compiler {self.tool('cc')} cannot build a trivial program: "
                f"{result.stderr.strip()[-600:]}"
            )
        seconds = time.monotonic() - started
        if cold:
            print(f"toolchain: zig's libc cache is ready after {seconds:.0f} s", flush=True)
            # only the message depends on it: without it the next warm-up says "minutes" again
            with contextlib.suppress(OSError):
                marker.write_text(f"{self.zig_target} -mcpu={self.cpu}: built by fwbuild\n")
        return f"zig {self.zig_version()} for {self.zig_target} -mcpu={self.cpu}: ok"


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
        gcc, ld = self._binary("gcc"), self._binary("as")
        if gcc is None or ld is None:
            return {"kind": "gcc", "prefix": self.prefix, "missing": True}
        stats = [os.stat(b) for b in (gcc, ld)]
        probe = f"{gcc}:{ld}:" + ":".join(f"{st.st_size}.{st.st_mtime_ns}" for st in stats)
        try:
            cache = json.loads(self.cache_file.read_text())
        except (FileNotFoundError, ValueError):
            cache = {}
        if probe not in cache:
            cache[probe] = {
                "gcc": _first_line([gcc, "--version"]),
                "as": _first_line([ld, "--version"]),
            }
            atomic_write(self.cache_file, json.dumps(cache, indent=1))
        return {"kind": "gcc", "prefix": self.prefix, **cache[probe]}

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


def _first_line(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return ""
    return (result.stdout or result.stderr).splitlines()[0].strip()


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
