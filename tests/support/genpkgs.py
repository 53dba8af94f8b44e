"""Generated packages and a generated project for end-to-end tests and benchmarks.

Two small C packages, made from scratch here (nothing upstream is involved):

* ``libgreet-1.0``: an autotools-style package (a hand-written ``configure`` that honours
  ``--host``/``--prefix`` and the toolchain variables), a static library, a header and a ``greet``
  program;
* ``hello-1.0``: a plain Makefile package linking ``libgreet``; a downloaded, gzip-compressed
  patch creates ``extra.c`` in ``diff -N`` style, and our own patch changes the greeting.

``make_project`` writes a project directory (dodo.py, board file, recipes, patches, overlay) whose
recipes download from a given base URL: the tests serve the tarballs over real HTTP.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EPOCH = 1_100_000_000  # fixed mtimes: the tarballs are byte-identical on every run

LIBGREET_CONFIGURE = r"""#!/bin/sh
# A hand-written configure in the autotools style: options, a compiler check, config.mk.
prefix=/usr/local
host=
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix=${arg#--prefix=} ;;
    --host=*) host=${arg#--host=} ;;
    --build=*) ;;
    *) echo "configure: error: unknown option $arg" >&2; exit 1 ;;
  esac
done
: "${CC:=cc}" "${AR:=ar}" "${RANLIB:=ranlib}"
echo "checking for a C compiler for ${host:-the build machine}... $CC"
printf 'int main(void) { return 0; }\n' > conftest.c
if ! $CC $CFLAGS $LDFLAGS conftest.c -o conftest; then
  echo "configure: error: C compiler cannot create executables" >&2
  exit 1
fi
rm -f conftest conftest.c
cat > config.mk <<EOF
CC = $CC
AR = $AR
RANLIB = $RANLIB
CFLAGS = $CFLAGS
LDFLAGS = $LDFLAGS
prefix = $prefix
EOF
echo "configure: wrote config.mk for ${host:-native}"
"""

LIBGREET_MAKEFILE = """\
include config.mk

all: libgreet.a greet

libgreet.a: greet.o
\t$(AR) rc $@ greet.o
\t$(RANLIB) $@

greet: main.o libgreet.a
\t$(CC) $(LDFLAGS) -o $@ main.o libgreet.a

%.o: %.c greet.h
\t$(CC) $(CFLAGS) -c -o $@ $<

install: all
\tmkdir -p $(DESTDIR)$(prefix)/lib $(DESTDIR)$(prefix)/include $(DESTDIR)$(prefix)/bin
\tcp libgreet.a $(DESTDIR)$(prefix)/lib/
\tcp greet.h $(DESTDIR)$(prefix)/include/
\tcp greet $(DESTDIR)$(prefix)/bin/
"""

MIT_LICENSE = """\
MIT License

Copyright (c) 2005 The {name} authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions: the above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
"""

LIBGREET_FILES = {
    "configure": LIBGREET_CONFIGURE,
    "LICENSE": MIT_LICENSE.format(name="libgreet"),
    "Makefile": LIBGREET_MAKEFILE,
    "greet.h": '#define GREET_VERSION "1.0"\nvoid greet(const char *who);\n',
    "greet.c": textwrap.dedent("""\
        #include <stdio.h>
        #include "greet.h"

        void greet(const char *who)
        {
            printf("Hello, %s, from libgreet " GREET_VERSION "\\n", who);
        }
        """),
    "main.c": textwrap.dedent("""\
        #include "greet.h"

        int main(int argc, char **argv)
        {
            greet(argc > 1 ? argv[1] : "world");
            return 0;
        }
        """),
}

HELLO_MAKEFILE = """\
CC ?= cc
OBJS = hello.o

hello: $(OBJS)
\t@if [ -n "$(GATE)" ]; then touch "$(GATE).reached"; \\
\t  while [ -e "$(GATE)" ]; do sleep 0.1; done; fi
\t$(CC) $(LDFLAGS) -o $@ $(OBJS) -lgreet

%.o: %.c
\t$(CC) $(CFLAGS) -c -o $@ $<

install: hello
\tmkdir -p $(DESTDIR)/usr/bin
\tcp hello $(DESTDIR)/usr/bin/hello
"""

HELLO_C = textwrap.dedent("""\
    #include <stdio.h>
    #include <greet.h>

    int main(void)
    {
        greet("SISO");
        printf("hello: plain\\n");
        return 0;
    }
    """)


def _tarball(top: str, files: dict[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(top)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
        tar.addfile(info)
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime = len(data), EPOCH
            info.mode = 0o755 if name == "configure" else 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _diff(old: dict[str, str], new: dict[str, str], work: Path) -> str:
    """A real ``diff -urN`` between two small trees (creations come out in diff -N style)."""
    for side, files in (("a", old), ("b", new)):
        for name, text in files.items():
            path = work / side / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    result = subprocess.run(
        ["diff", "-urN", "a", "b"], cwd=work, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, result.stderr
    return result.stdout


@dataclass
class Dist:
    """The files a mirror serves: name -> bytes."""

    files: dict[str, bytes]

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (directory / name).write_bytes(data)


def make_dist(work: Path) -> Dist:
    hello_files = {"Makefile": HELLO_MAKEFILE, "hello.c": HELLO_C}
    hello_files["LICENSE"] = MIT_LICENSE.format(name="hello")  # for legal-info
    extra = dict(hello_files)
    extra["extra.c"] = '#include <stdio.h>\nvoid extra(void) { printf("hello: extra\\n"); }\n'
    extra["hello.c"] = HELLO_C.replace(
        "int main(void)\n{\n", "void extra(void);\n\nint main(void)\n{\n    extra();\n"
    )
    extra["Makefile"] = HELLO_MAKEFILE.replace("OBJS = hello.o", "OBJS = hello.o extra.o")
    patch = _diff(hello_files, extra, work / "diff-extra")
    return Dist(
        {
            "libgreet-1.0.tar.gz": _tarball("libgreet-1.0", LIBGREET_FILES),
            "hello-1.0.tar.gz": _tarball("hello-1.0", hello_files),
            "hello-1.0-extra.patch.gz": gzip.compress(patch.encode(), mtime=0),
        }
    )


OWN_PATCH = """\
Our own patch, as a project would keep it under patches/: it changes the greeting so that the
tests can see our series was applied after the downloaded one.

--- a/hello.c
+++ b/hello.c
@@ -10,3 +10,3 @@
     greet("SISO");
-    printf("hello: plain\\n");
+    printf("hello: patched\\n");
     return 0;
"""

BOARD = """\
[board]
name = "testboard"
packages = ["hello"]
jobs = 2

[target]
arch = "x86"
cpu = "i586"
libc = "musl"
triplet = "i586-linux-musl"
cflags = ["-O2"]

[variants]
extra = true

[paths]
build = "build"
downloads = "dl"
output = "output"

[mirrors]
primary = "{primary}"
backup = ["{backup}"]

[rootfs]
overlay = "configs/rootfs"
permissions = "configs/permissions.txt"
"""

LIBGREET_RECIPE = """\
from fwbuild.recipe import AutotoolsPackage, Source


class Libgreet(AutotoolsPackage):
    name = "libgreet"
    version = "1.0"
    license = "MIT"
    license_files = ("LICENSE",)
    sources = (
        Source("libgreet-1.0.tar.gz", urls=("{upstream}/libgreet-1.0.tar.gz",), sha256="{sha}"),
    )
    target_files = {{"usr/bin/greet": 0o755}}
"""

HELLO_RECIPE = """\
from fwbuild.recipe import MakePackage, Patch, Source


class Hello(MakePackage):
    name = "hello"
    version = "1.0"
    license = "MIT"
    license_files = ("LICENSE",)
    sources = (Source("hello-1.0.tar.gz", urls=("{upstream}/hello-1.0.tar.gz",), sha256="{sha}"),)
    patches = (
        Patch(
            "hello-1.0-extra.patch.gz",
            urls=("{upstream}/hello-1.0-extra.patch.gz",),
            sha256="{patch_sha}",
            when="+extra",
        ),
    )
    depends = ("libgreet",)
    target_files = {{"usr/bin/hello": 0o755}}

    def make_args(self, ctx):
        return ["GATE={gate}"]
"""

DODO = """\
from pathlib import Path

from fwbuild.dodo import load

globals().update(load(Path(__file__).parent / "configs" / "board.toml"))
"""


def make_project(root: Path, dist: Dist, base_url: str, *, gate: Path | None = None) -> Path:
    """A project downloading from ``{base_url}/`` ``primary``, ``upstream`` and ``backup``."""
    (root / "recipes").mkdir(parents=True)
    (root / "configs" / "rootfs" / "etc").mkdir(parents=True)
    (root / "patches" / "hello" / "1.0").mkdir(parents=True)
    (root / "dodo.py").write_text(DODO)
    (root / "configs" / "board.toml").write_text(
        BOARD.format(primary=f"{base_url}/primary", backup=f"{base_url}/backup")
    )
    (root / "configs" / "rootfs" / "etc" / "hello.conf").write_text("greeting = SISO\n")
    (root / "configs" / "permissions.txt").write_text(
        "/usr/bin/hello  f 0755 0 0\n/dev/console c 0600 0 0 5 1\n/var/run d 0755 0 0\n"
    )
    upstream = f"{base_url}/upstream"
    (root / "recipes" / "libgreet.py").write_text(
        LIBGREET_RECIPE.format(upstream=upstream, sha=dist.sha256("libgreet-1.0.tar.gz"))
    )
    (root / "recipes" / "hello.py").write_text(
        HELLO_RECIPE.format(
            upstream=upstream,
            sha=dist.sha256("hello-1.0.tar.gz"),
            patch_sha=dist.sha256("hello-1.0-extra.patch.gz"),
            gate=str(gate or ""),
        )
    )
    (root / "patches" / "hello" / "1.0" / "0001-patched-greeting.patch").write_text(OWN_PATCH)
    return root


NOTES_RECIPE = """\
from fwbuild.recipe import Package


class Notes(Package):
    name = "notes"
    version = "2"
    license = "MIT"
    local_source = "src/notes"
"""


def add_own_code_package(root: Path) -> None:
    """Add ``notes``: our own code kept in the project (no download) that puts nothing in the
    image; for the SBOM and legal-info tests."""
    (root / "src" / "notes").mkdir(parents=True)
    (root / "src" / "notes" / "NOTES").write_text("our own notes\n")
    (root / "recipes" / "notes.py").write_text(NOTES_RECIPE)
    board = root / "configs" / "board.toml"
    board.write_text(
        board.read_text().replace('packages = ["hello"]', 'packages = ["hello", "notes"]')
    )
