"""Generated packages and a generated project for end-to-end tests and benchmarks.

Small C packages, made from scratch here (nothing upstream is involved):

* ``libgreet-1.0``: an autotools-style package (a hand-written ``configure`` that honours
  ``--host``/``--prefix`` and the toolchain variables), a static library, a header and a ``greet``
  program;
* ``hello-1.0``: a plain Makefile package linking ``libgreet``; a downloaded, gzip-compressed
  patch creates ``extra.c`` in ``diff -N`` style, and our own patch changes the greeting;
* ``tally-2.1`` (``add_tally_package``): shaped like a 2005 autotools package (a configure that
  rejects a ``*-musl`` host as an old config.sub does and needs a cache variable for its run
  test, GNU89 ``extern inline``, subdirectories, an install that runs the host's strip), built
  by a recipe made only of declarations (fwbuild.kinds).

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
            "tally-2.1.tar.gz": tally_tarball(),
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


# --- tally: a real-world-shaped autotools package, built by a recipe that only declares ------
TALLY_CONFIGURE = r"""#!/bin/sh
# tally's configure, shaped like a 2005 autoconf one: config.sub of its day knows no *-musl host,
# and a run test cannot run when cross compiling (its cache variable must be given).
prefix=/usr/local
host=
build=
nls=yes
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix=${arg#--prefix=} ;;
    --host=*) host=${arg#--host=} ;;
    --build=*) build=${arg#--build=} ;;
    --disable-nls) nls=no ;;
    *) echo "configure: error: unrecognized option: $arg" >&2; exit 1 ;;
  esac
done
case "$host" in
  i[3456]86-pc-linux-gnu|x86_64-pc-linux-gnu|mipsel-unknown-linux-gnu|arm-unknown-linux-gnu) ;;
  "") echo "configure: error: cross compiling needs --host" >&2; exit 1 ;;
  *) echo "configure: error: config.sub: invalid configuration \`$host'" >&2; exit 1 ;;
esac
if [ -z "$tally_cv_sizeof_long" ]; then
  echo "configure: error: cannot run test program while cross compiling" >&2
  exit 1
fi
: "${CC:=cc}" "${AR:=ar}" "${RANLIB:=ranlib}"
printf 'int main(void) { return 0; }\n' > conftest.c
if ! $CC $CFLAGS $LDFLAGS conftest.c -o conftest; then
  echo "configure: error: C compiler cannot create executables" >&2; exit 1
fi
rm -f conftest conftest.c
cat > config.h <<EOF
#define TALLY_HOST "$host"
#define SIZEOF_LONG $tally_cv_sizeof_long
#define ENABLE_NLS $([ $nls = yes ] && echo 1 || echo 0)
EOF
cat > config.mk <<EOF
CC = $CC
AR = $AR
RANLIB = $RANLIB
CFLAGS = $CFLAGS
LDFLAGS = $LDFLAGS
prefix = $prefix
EOF
echo "configure: tally configured for $host"
"""

TALLY_MAKEFILE = """\
include config.mk

all:
\t$(MAKE) -C lib CC="$(CC)" AR="$(AR)" RANLIB="$(RANLIB)" CFLAGS="$(CFLAGS)"
\t$(MAKE) -C src CC="$(CC)" CFLAGS="$(CFLAGS)" LDFLAGS="$(LDFLAGS)"

# Upstream strips with the build host's strip, which cannot read a cross binary.
install: all
\tinstall -s -m 755 src/tally $(DESTDIR)$(prefix)/bin/tally
"""

TALLY_FILES = {
    "configure": TALLY_CONFIGURE,
    "COPYING": MIT_LICENSE.format(name="tally"),
    "Makefile": TALLY_MAKEFILE,
    "tally.conf": "# tally's defaults\nwords = yes\n",
    "lib/Makefile": (
        "libtally.a: count.o\n\t$(AR) rc $@ count.o\n\t$(RANLIB) $@\n\n"
        "count.o: count.c ../count.h\n\t$(CC) $(CFLAGS) -I.. -c -o $@ count.c\n"
    ),
    # 2005 C: `extern inline` in a header is GNU89's "inline only", with the one real definition
    # in count.c; a C99 compiler emits a definition per file instead (duplicate symbols), so
    # the package needs -std=gnu89, as the recipe says.
    "count.h": textwrap.dedent("""\
        extern inline int is_space(int c) { return c == ' ' || c == '\\n' || c == '\\t'; }
        long count_words(const char *s);
        long count_lines(const char *s);
        """),
    "lib/count.c": textwrap.dedent("""\
        #include "count.h"

        int is_space(int c) { return c == ' ' || c == '\\n' || c == '\\t'; }

        long count_words(const char *s)
        {
            long n = 0;
            int in = 0;
            for (; *s; s++) {
                if (is_space(*s)) in = 0;
                else if (!in) { in = 1; n++; }
            }
            return n;
        }

        long count_lines(const char *s)
        {
            long n = 0;
            for (; *s; s++)
                if (*s == '\\n') n++;
            return n;
        }
        """),
    "src/Makefile": (
        "tally: tally.o ../lib/libtally.a\n\t$(CC) $(LDFLAGS) -o $@ tally.o ../lib/libtally.a\n\n"
        "tally.o: tally.c ../count.h ../config.h\n\t$(CC) $(CFLAGS) -I.. -c -o $@ tally.c\n"
    ),
    "src/tally.c": textwrap.dedent("""\
        #include <stdio.h>
        #include "config.h"
        #include "count.h"

        int main(int argc, char **argv)
        {
            const char *text = argc > 1 ? argv[1] : "";
            if (sizeof(long) != SIZEOF_LONG) return 2;
            printf("tally 2.1 (%s): %ld lines %ld words\\n", TALLY_HOST,
                   count_lines(text), count_words(text));
            return 0;
        }
        """),
}

TALLY_OWN_PATCH_HEADER = """\
tally: count a last line that has no newline

A text whose last line does not end in a newline was one line short.

"""


def tally_own_patch() -> str:
    """Our patch of tally (a real unified diff, made here): a header saying what it fixes."""
    import difflib

    old = TALLY_FILES["lib/count.c"]
    new = old.replace(
        "    long n = 0;\n    for (; *s; s++)\n        if (*s == '\\n') n++;\n    return n;",
        "    long n = 0;\n    const char *start = s;\n    for (; *s; s++)\n"
        "        if (*s == '\\n') n++;\n    if (s > start && s[-1] != '\\n')\n        n++;\n"
        "    return n;",
    )
    assert new != old
    diff = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        "a/lib/count.c", "b/lib/count.c",
    )  # fmt: skip
    return TALLY_OWN_PATCH_HEADER + "".join(diff)


# Only declarations: the kind (autotools) does configure/make; what differs is said as data.
TALLY_RECIPE = '''\
"""tally 2.1: counts lines and words (a generated, real-world-shaped autotools package)."""

from fwbuild.kinds import AutotoolsPackage, Source


class Tally(AutotoolsPackage):
    name = "tally"
    version = "2.1"
    license = "MIT"
    license_files = {{"COPYING": "sha256:{copying}"}}
    homepage = "https://tally.example.org/"
    sources = (
        Source("tally-2.1.tar.gz", urls=("{upstream}/tally-2.1.tar.gz",), sha256="{sha}"),
    )
    configure_options = ("--disable-nls",)
    # AC_TRY_RUN cannot run on the build machine: the target's answer.
    configure_cache = {{"tally_cv_sizeof_long": "4"}}
    # 2005 C: GNU89 inline semantics.
    make_variables = {{"CFLAGS": "{{CFLAGS}} -std=gnu89"}}
    # Upstream's install strips with the host's strip: the files are copied instead.
    install_files = {{
        "usr/bin/tally": ("src/tally", 0o755),
        "etc/tally.conf": ("tally.conf", 0o644),
    }}
'''


def tally_tarball() -> bytes:
    return _tarball("tally-2.1", TALLY_FILES)


def add_tally_package(root: Path, base_url: str) -> Path:
    """Add ``tally`` (recipe, our patch) to a project made by ``make_project``; the mirror must
    serve ``tally-2.1.tar.gz`` (``tally_tarball()``) under ``/upstream``. Returns the recipe."""
    data = tally_tarball()
    recipe = root / "recipes" / "tally.py"
    recipe.write_text(
        TALLY_RECIPE.format(
            upstream=f"{base_url}/upstream",
            sha=hashlib.sha256(data).hexdigest(),
            copying=hashlib.sha256(TALLY_FILES["COPYING"].encode()).hexdigest(),
        )
    )
    own = root / "patches" / "tally" / "2.1"
    own.mkdir(parents=True)
    (own / "0001-count-last-line-without-newline.patch").write_text(tally_own_patch())
    board = root / "configs" / "board.toml"
    board.write_text(
        board.read_text().replace('packages = ["hello"]', 'packages = ["hello", "tally"]')
    )
    return recipe
