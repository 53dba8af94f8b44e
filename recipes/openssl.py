"""OpenSSL 3.5.7 (LTS, supported to 2030-04): a static libcrypto (and libssl) for racoon; nothing
of it goes into the rootfs. (3.0, the LTS before, reached its end of life on 2026-09-07.)

Configured as OpenSSL's generic Linux target for the board's word size (``linux-generic32``,
fwbuild.arch) without assembler (the i586 board has no SSE; the x86 asm paths also want a GNU
toolchain), without shared libraries, DSO loading, engines, async (musl has no ucontext) or
tests. With ``no-dso`` the legacy provider (single DES, Blowfish, CAST) is
linked into libcrypto instead of being a loadable module.

``-DBROKEN_CLANG_ATOMICS``: on i386 a 64-bit integer is only 4-byte aligned, so clang turns
OpenSSL's 64-bit ``__atomic`` calls into libatomic calls (``__atomic_is_lock_free``), which
zig's runtime does not have; the define makes OpenSSL use its lock-based fallback.

``no-makedepend``: every configure starts from a fresh tree, so header dependencies buy nothing,
and under zig with ``-j2`` a compile once failed on a vanished ``.d.tmp`` file.

Our patch keeps the build directories out of ``OpenSSL_version(OPENSSL_CFLAGS)``.
"""

from fwbuild.kinds import Make, Package, Run, Source

CONFIGURE_OPTIONS = (
    "{arch.openssl_target}",
    "no-asm",
    "no-shared",
    "no-dso",
    "no-engine",
    "no-async",
    "no-tests",
    "no-makedepend",
    "-DBROKEN_CLANG_ATOMICS",
)


class Openssl(Package):
    name = "openssl"
    version = "3.5.7"
    license = "Apache-2.0"
    license_files = {
        "LICENSE.txt": "sha256:7d5450cb2d142651b8afa315b5f238efc805dad827d91ba367d8516bc9d49e7a"
    }
    homepage = "https://www.openssl.org/"
    cpe_products = ("openssl:openssl",)
    sources = (
        Source(
            "openssl-3.5.7.tar.gz",
            urls=(
                "https://www.openssl.org/source/openssl-3.5.7.tar.gz",
                "https://www.openssl.org/source/old/3.5/openssl-3.5.7.tar.gz",
                "https://github.com/openssl/openssl/releases/download/openssl-3.5.7/"
                "openssl-3.5.7.tar.gz",
            ),
            # Debian 13 ships this exact upstream tarball, with upstream's signature, as
            # openssl_3.5.7.orig.tar.gz (53,153,930 bytes; the digest its Sources index lists).
            sha256="a8c0d28a529ca480f9f36cf5792e2cd21984552a3c8e4aa11a24aa31aeac98e8",
        ),
    )
    # Configure takes CC, CFLAGS, LDFLAGS, AR and RANLIB from the environment; CFLAGS replaces
    # the target's default -O3. --openssldir: where a target program (racoon does not) would
    # look for openssl.cnf and modules.
    configure_steps = (
        Run("perl", "./Configure", *CONFIGURE_OPTIONS, "--prefix=/usr", "--libdir=lib",
            "--openssldir=/etc/ssl"),
    )  # fmt: skip
    # Only the libraries: the openssl program is not wanted on the board.
    build_steps = (Make(".", "build_libs"),)
    # Headers, libcrypto.a, libssl.a and the .pc files; nothing goes into the rootfs (racoon
    # links libcrypto statically).
    install_steps = (Make(".", "install_dev", jobs=1, DESTDIR="{staging}"),)
