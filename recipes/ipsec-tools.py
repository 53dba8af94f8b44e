"""ipsec-tools 0.8.2: racoon (IKEv1 daemon), racoonctl (its admin-port client) and setkey.

Built against OpenSSL 3 (our port: patches 0004-0007; 0.8.2 only knows OpenSSL <= 1.0),
statically, with NAT-T, DPD, IKE fragmentation, hybrid/xauth, the admin port and IPv6.
racoon's default configuration file is /etc/sysconfig/racoon.conf (``--sysconfdir``), where
the rootfs seed installs it; the admin socket is /var/racoon/racoon.sock.

Cross-build notes:

* ``--host`` is the board's GNU triplet (``i586-pc-linux-gnu``, fwbuild.arch): the tarball's
  2014 ``config.sub`` does not know ``*-musl``. configure only uses the host to pick its Linux
  code paths; the compiler is ``$CC``.
* IPv6 is asked for explicitly: configure decides it with an ``AC_TRY_RUN`` (no cache
  variable), which is "no" when cross compiling. ``va_copy`` is a run test too (cached below).
* ``--with-kernel-headers``: PF_KEY/XFRM UAPI headers; zig ships them with its libc headers.
* configure appends ``-Werror`` to CFLAGS; OpenSSL 3 deprecations (HMAC, DH, RSA low-level
  APIs, all still present) would then stop the build, so ``make`` gets CFLAGS without it.
* The tarball ships generated scanners and parsers, and patches 0003/0006 edit both the
  ``.l``/``.y`` and their output: the outputs' timestamps are refreshed before make, which
  would otherwise run flex/bison (the build host need not have them).
* libipsec/libracoon are libtool libraries: ``--disable-shared`` links them in statically.

Upstream: the 0.8.2 release tarball, sha256 as published by OpenEmbedded's
meta-networking recipe (and nixpkgs' hash of the same SourceForge file).
"""

from fwbuild.kinds import AutotoolsPackage, File, GitSource, Source, Touch

# Files generated from .l/.y that the tarball ships (and our patches keep in step).
GENERATED = (
    "src/racoon/cftoken.c",
    "src/racoon/cfparse.c",
    "src/racoon/cfparse.h",
    "src/racoon/prsa_tok.c",
    "src/racoon/prsa_par.c",
    "src/racoon/prsa_par.h",
    "src/setkey/token.c",
    "src/setkey/parse.c",
    "src/setkey/parse.h",
    "src/libipsec/policy_token.c",
    "src/libipsec/policy_parse.c",
    "src/libipsec/policy_parse.h",
)


class IpsecTools(AutotoolsPackage):
    name = "ipsec-tools"
    version = "0.8.2"
    license = "BSD-3-Clause"
    # No separate licence file: the KAME/WIDE BSD licence heads every source file.
    license_files = {
        "src/libipsec/pfkey.c":
            "sha256:a5266c7da53c9d572264c4c3360f146ffad4da2721c826d3aa86af6f864a067f",
        "src/racoon/racoon.8":
            "sha256:ad2986d974b9485004fb0f9c3f37a9aef12243fc800303bca9d8a1398ead4578",
    }  # fmt: skip
    homepage = "http://ipsec-tools.sourceforge.net/"
    cpe_products = ("ipsec-tools:ipsec-tools",)
    cve_status = {
        "CVE-2015-4047": "not-affected: the NULL dereference is in racoon's GSS-API code "
        "(isakmp_gssapi), which is not built (--disable-gssapi)",
    }
    sources = (
        Source(
            "ipsec-tools-0.8.2.tar.bz2",
            urls=(
                "https://downloads.sourceforge.net/project/ipsec-tools/ipsec-tools/0.8.2/"
                "ipsec-tools-0.8.2.tar.bz2",
                "http://ftp.netbsd.org/pub/NetBSD/misc/ipsec-tools/0.8/ipsec-tools-0.8.2.tar.bz2",
                "https://cdn.netbsd.org/pub/NetBSD/misc/ipsec-tools/0.8/ipsec-tools-0.8.2.tar.bz2",
            ),
            # OpenEmbedded meta-networking ipsec-tools_0.8.2.bb (md5 d53ec14a…b41); nixpkgs'
            # base32 hash 0b9gfbz78k2nj0k7jdlm5kajig628ja9qm0z5yksiwz22s3v7dlf is the same file.
            sha256="8eb6b38716e2f3a8a72f1f549c9444c2bc28d52c9536792690564c74fe722f2d",
            fallbacks=(
                # SourceForge and the NetBSD mirror come and go. Debian's upstream import of
                # the 2014-07-11 CVS snapshot after 0.8.2 (with configure and the generated
                # parsers, like the release): a different source with its own digest; our
                # patches apply to it unchanged.
                GitSource(
                    "https://github.com/rdratlos/racoon-ipsec-tools.git",
                    "da77380b1062ac19998a6a8fb8703b77d8dca335",
                    filename="ipsec-tools-0.8.2+20140711-git-da77380b.tar",
                    sha256="da72c56df9db7d15b3aa950a0c1da38c5f2ed5b7514a37e8707d9c89548d79a7",
                ),
            ),
        ),
    )
    depends = ("openssl",)
    # PF_KEY is a socket (no node); racoon needs none. OpenSSL seeds from getrandom(), which
    # 2.6.11 lacks, then from /dev/urandom (after waiting on /dev/random): see README, "Entropy".
    needs_devices = ()

    configure_cache = {
        "ac_cv_va_copy": "yes",
        "ac_cv___va_copy": "yes",
    }

    configure_options = (
        "--sysconfdir=/etc/sysconfig",
        "--localstatedir=/var",
        "--disable-shared",
        "--enable-static",
        "--with-openssl={deps[openssl]}/usr",
        "--with-kernel-headers={kernel_headers}",
        "--without-readline",
        "--without-libradius",
        "--without-libpam",
        "--disable-gssapi",
        "--disable-security-context",
        "--enable-ipv6",
        "--enable-natt",
        "--enable-dpd",
        "--enable-frag",
        "--enable-hybrid",
        "--enable-adminport",
        "--enable-stats",
    )
    # Newer than their .l/.y: make must not run flex/bison.
    configure_steps = (Touch(*GENERATED),)
    # configure's CFLAGS minus -Werror (see the module docstring).
    make_variables = {"CFLAGS": "{CFLAGS} -Wall -Wno-unused -Wno-deprecated-declarations"}
    install_files = {
        "usr/sbin/racoon": ("src/racoon/racoon", 0o755),
        "usr/sbin/racoonctl": ("src/racoon/racoonctl", 0o755),
        "usr/sbin/setkey": ("src/setkey/setkey", 0o755),
        # The crypto self-test, for running under qemu; not part of the rootfs.
        "usr/lib/ipsec-tools/eaytest": File("src/racoon/eaytest", 0o755, rootfs=False),
    }
