"""What a recipe declares, and the generic package kinds a recipe builds on.

A recipe is one module in ``recipes/`` with one subclass of :class:`Package`. It states what differs
from the generic kind (Spack's ``package.py`` and Buildroot's ``autotools-package`` are the model):

    class Hello(MakePackage):
        name = "hello"
        version = "1.0"
        license = "MIT"
        license_files = {"COPYING": "sha256:..."}
        sources = (Source("hello-1.0.tar.gz", urls=("https://example.org/hello-1.0.tar.gz",),
                          sha256="..."),)
        patches = (Patch("hello-fix.patch.gz", urls=(...,), sha256="...", when="+fancy"),)
        depends = ("libgreet",)
        variants = {"fancy": Variant("a fancier greeting", default=False)}
        make_variables = {"CFLAGS": "{CFLAGS} -std=gnu89"}
        install_files = {"usr/bin/hello": ("src/hello", 0o755)}

A stage's commands are declarations (``configure_steps``, ``build_steps``, ``install_steps``:
``Make``, ``Run``, ``Touch`` of fwbuild.commands, whose arguments may name the toolchain's
``{CC}``, ``{CFLAGS}`` …, the target's ``{host}`` and ``{arch.…}``); the kinds (``MakePackage``,
``AutotoolsPackage``, fwbuild.kinds' ``KconfigPackage``) supply the usual ones. ``install_files``
is at once what the install stage copies and what goes into the rootfs. A recipe writes a method
only for what no declaration says.

Our own patches are not declared: every ``patches/<name>/<version>/*.patch`` is applied in name
order after the downloaded ones.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from fwbuild.arch import Arch, target_arch
from fwbuild.commands import File, Make, Run, Step, Touch, Variant, board_values, expand
from fwbuild.errors import ConfigError
from fwbuild.licensing import check_digest_syntax

__all__ = [
    "AutotoolsPackage", "DeviceNeed", "File", "GitSource", "Make", "MakePackage", "Package",
    "Patch", "Run", "Source", "Touch", "Variant",
]  # fmt: skip

if TYPE_CHECKING:
    from fwbuild.config import Board
    from fwbuild.steps import Context

# Hex digits of each digest a recipe, a pin or an override may give; a shorter one is refused
# when the recipe loads (a 4-digit "sha256" would never match, and cost a download per mirror).
DIGEST_LENGTHS = {"sha256": 64, "sha512": 128, "sha1": 40, "md5": 32}
DIGEST_ALGOS = tuple(DIGEST_LENGTHS)


@dataclass(frozen=True)
class Source:
    """A file to download and verify. The first source of a package is its source tarball."""

    filename: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    sha512: str | None = None
    sha1: str | None = None
    md5: str | None = None
    when: str | None = None
    # Other files that can stand in for this one when it cannot be had (its hosts are dead) or
    # is not pinned, tried in order; see ``GitSource`` and fwbuild.alternatives.
    fallbacks: tuple[Source, ...] = ()

    def digests(self) -> dict[str, str]:
        return {a: getattr(self, a).lower() for a in DIGEST_ALGOS if getattr(self, a)}


# Capitalised: it reads as a declaration beside Source and Patch.
def GitSource(
    repo: str, commit: str, *, filename: str, sha256: str, path: str | None = None
) -> Source:
    """A fallback from a git repository at a full commit id (fwbuild.gitsource).

    Without ``path``: the tree at ``commit`` as our reproducible tar (``filename`` must end in
    ``.tar``; ``sha256`` is that archive's). With ``path``: that one file's bytes. Either is a
    different file from the upstream one, with its own name and digest, so the build, the SBOM
    and the report can say which of them was used::

        Source("l2tpd-0.69.tar.gz", urls=(...), md5="...", fallbacks=(
            GitSource("https://github.com/sina-ht/l2tpd.git", "c729b8c8…",
                      filename="l2tpd-0.69-git-c729b8c8.tar", sha256="..."),))
    """
    from fwbuild.gitsource import git_url, parse_git_url

    url = git_url(repo, commit, path)
    try:
        parse_git_url(url)
    except ValueError as exc:
        raise ConfigError(f"GitSource {repo} @ {commit}: {url} is not usable: {exc}") from None
    if not isinstance(sha256, str) or len(sha256) != 64 or sha256.strip("0123456789abcdef"):
        raise ConfigError(
            f"GitSource {repo} @ {commit}: sha256 {sha256!r} is not 64 lower-case hex digits; "
            "export it once and take the sha256 the build prints (see fwbuild.gitsource)"
        )
    if path is None and not filename.endswith(".tar"):
        raise ConfigError(
            f"GitSource {repo}: the archive of a whole tree is an uncompressed tar, so its file "
            f"name must end in .tar, not {filename!r}"
        )
    return Source(filename, urls=(url,), sha256=sha256)


@dataclass(frozen=True)
class Patch(Source):
    """A downloaded patch (plain or .gz), applied before our own patches in declaration order."""

    strip: int = 1


@dataclass(frozen=True)
class DeviceNeed:
    """A device node the package needs at run time; the image must provide it."""

    path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int = 0o600
    why: str = ""


@dataclass
class Package:
    """The generic package: nothing to configure, build or install unless a recipe says so."""

    name: ClassVar[str]
    version: ClassVar[str]
    license: ClassVar[str] = "unknown"
    # The licence texts in the (patched) source tree, each with its digest as Buildroot's .hash
    # has them: ``{"COPYING": "sha256:…"}``. A version bump that changes a licence's text fails
    # the install stage and legal-info until someone has read it and updated the digest
    # (fwbuild.legal). A plain tuple of paths is accepted and checks nothing.
    license_files: ClassVar[Mapping[str, str] | tuple[str, ...]] = ()
    homepage: ClassVar[str] = ""
    # What vulnerability databases call the package (fwbuild.cve, the SBOM's CPEs): CPE 2.3
    # ``vendor:product`` pairs as NVD spells them (``o:vendor:product`` for an operating system),
    # the package's own first, then names some records use instead. Empty: not checked.
    cpe_products: ClassVar[tuple[str, ...]] = ()
    # CVEs that do not apply as the package is built, ``CVE id -> "kind: reason"`` (Yocto's
    # CVE_STATUS): ``{"CVE-2015-4047": "not-affected: gssapi is not built (--disable-gssapi)"}``.
    # A CVE one of our patches fixes is not declared here: the patch's ``CVE:`` header says so.
    cve_status: ClassVar[Mapping[str, str]] = {}
    sources: ClassVar[tuple[Source, ...]] = ()
    # Our own code kept in the project (a directory relative to it) instead of a download.
    local_source: ClassVar[str | None] = None
    patches: ClassVar[tuple[Patch, ...]] = ()
    depends: ClassVar[tuple[str, ...]] = ()
    # Board variants the recipe's steps read through ``self.variant(name)``: names, or
    # ``{name: Variant(description, default)}`` (the default applies when the board leaves the
    # variant out); those named in ``when=`` conditions count without being listed. Only these
    # are part of its stamps.
    variants: ClassVar[tuple[str, ...] | Mapping[str, Variant]] = ()
    # Files taken from the package's staging directory into the rootfs, with their modes. A
    # pattern (``etc/racoon/*``) takes every match, perhaps none; symbolic links stay links.
    # Derived from ``install_files`` when a recipe declares those instead.
    target_files: ClassVar[Mapping[str, int]] = {}
    # What the install stage copies from the built tree: ``staging path -> (tree path, mode)``
    # or ``File(tree path, mode, rootfs=False)`` for what stays out of the rootfs. It is the
    # rootfs's file list too (``target_files``), so no recipe writes the list twice.
    install_files: ClassVar[Mapping[str, File | tuple[str, int]]] = {}
    # Symbolic links a build lists in a file (a multi-call binary's applets): ``list file in the
    # tree -> staging path of the binary``; each listed path becomes a relative link to it.
    install_links: ClassVar[Mapping[str, str]] = {}
    # The commands of each stage (fwbuild.commands); a kind supplies its usual ones.
    configure_steps: ClassVar[tuple[Step, ...]] = ()
    build_steps: ClassVar[tuple[Step, ...]] = ()
    # None: the kind's install commands (``make install``) unless ``install_files`` says what
    # to copy; () for none at all.
    install_steps: ClassVar[tuple[Step, ...] | None] = None
    # Variables every ``Make`` step of the package passes (before the step's own).
    make_variables: ClassVar[Mapping[str, str]] = {}
    # Files of the staging directory that are images of their own, not rootfs content:
    # ``output name -> staging path`` (a kernel: {"bzImage": "boot/bzImage"}).
    image_files: ClassVar[Mapping[str, str]] = {}
    # What the package needs from the image at run time (device nodes and the like).
    needs_devices: ClassVar[tuple[DeviceNeed, ...]] = ()
    # Files of the board (paths relative to the project, e.g. a kernel config fragment) that the
    # steps read: their contents are part of the configure stamp.
    board_files: ClassVar[tuple[str, ...]] = ()
    # Sections of the board file (``[vpn]`` …) the steps read: their values join the stamps.
    board_sections: ClassVar[tuple[str, ...]] = ()
    # The schema of the board sections this recipe reads: ``section -> pydantic model``, or
    # ``"module:Model"`` for a module beside the recipes (imported only when the board changed, so
    # a no-op build does not pay for pydantic). A section no recipe (and not the engine) declares
    # is an error; ``self.board.settings("vpn")`` gives the section validated and typed.
    settings: ClassVar[Mapping[str, object]] = {}
    # True when the install stage depends on things outside the build that its own steps may
    # create or change (a PKI directory, a secrets file): ``runtime_inputs`` is then evaluated
    # when doit asks, not once at start-up.
    dynamic: ClassVar[bool] = False
    # Whether the install stage's output may be stored in the shared build cache and restored
    # from it (fwbuild.cache). None (the default): yes, unless the package is ``dynamic`` (or
    # depends on one) or declares ``protected_paths``: such a package's install reads files
    # outside the build (a PKI, a secrets file) and its outputs hold secrets, which must never
    # reach a shared directory or server. False: never. True cannot override that rule.
    shared_cache: ClassVar[bool | None] = None
    # Extra per-package tasks, ``task name -> (method name, one-line doc)``; the method gets a
    # Context once the package is configured (menuconfig, savedefconfig, …).
    extra_tasks: ClassVar[Mapping[str, tuple[str, str]]] = {}
    # "target" (the userland cross compiler) or the name of another toolchain the board defines.
    toolchain: ClassVar[str] = "target"
    # False: a configuration change starts from a fresh tree, because most build systems do not
    # notice changed flags. True for build systems that track their own configuration (kbuild).
    reconfigure_in_place: ClassVar[bool] = False

    board: Board
    recipe_file: Path
    own_patches: tuple[Path, ...] = field(default=())

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Normalise a recipe's declarations once, when its class is made: ``install_files``
        entries become ``File``s and give ``target_files`` (unless the recipe lists those)."""
        super().__init_subclass__(**kwargs)
        if "install_files" in cls.__dict__:
            files: dict[str, File] = {}
            for dest, entry in cls.install_files.items():
                if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], int):
                    entry = File(entry[0], entry[1])
                if not isinstance(entry, File) or not isinstance(entry.mode, int):
                    raise ConfigError(
                        f"recipe {cls.__module__}.{cls.__name__}: install_files[{dest!r}] is "
                        f'{entry!r}; write (tree path, mode) such as ("src/prog", 0o755) or '
                        "File(tree path, mode, rootfs=False)"
                    )
                if entry.rootfs and "{" in dest:
                    raise ConfigError(
                        f"recipe {cls.__module__}.{cls.__name__}: install_files[{dest!r}] goes "
                        "into the rootfs, whose file list must not depend on the board; only a "
                        "File(..., rootfs=False) may use placeholders in its path"
                    )
                files[dest] = entry
            cls.install_files = files
            if "target_files" not in cls.__dict__:
                cls.target_files = {d: f.mode for d, f in files.items() if f.rootfs}
        check_digest_syntax(cls)

    # --- declarations evaluated against the board -------------------------------------------
    def when(self, condition: str | None) -> bool:
        """Spack-style conditions: ``+mppc`` (variant on), ``~mppc`` (off), space-separated AND."""
        if not condition:
            return True
        for term in condition.split():
            if term[:1] not in "+~" or len(term) < 2:
                raise ConfigError(
                    f"{self.recipe_file}: condition {condition!r} is not of the form +variant or "
                    "~variant",
                    package=self.name,
                )
            if self.variant_value(term[1:]) != (term[0] == "+"):
                return False
        return True

    def active_sources(self) -> list[Source]:
        return [s for s in self.sources if self.when(s.when)]

    def active_patches(self) -> list[Patch]:
        return [p for p in self.patches if self.when(p.when)]

    def used_variants(self) -> set[str]:
        used = set(self.variants)
        steps = [*self.configure_steps, *self.build_steps, *(self.install_steps or ())]
        whens = [d.when for d in [*self.sources, *self.patches]] + [s.when for s in steps]
        for when in whens:
            used.update(term[1:] for term in (when or "").split())
        return used

    def variant_value(self, name: str) -> bool:
        """The board's value of a variant, or the recipe's declared default when it has none."""
        declared = self.variants.get(name) if isinstance(self.variants, Mapping) else None
        if (
            declared is not None
            and declared.default is not None
            and name not in self.board.variants
        ):
            return declared.default
        return self.board.variant(name)

    def variant(self, name: str) -> bool:
        if name not in self.used_variants():
            raise ConfigError(
                f"{self.recipe_file}: the recipe reads variant {name!r} without declaring it; "
                f"add it to `variants = (...)` so that changing it rebuilds the package",
                package=self.name,
            )
        return self.variant_value(name)

    @property
    def variant_values(self) -> dict[str, bool]:
        return {v: self.variant_value(v) for v in sorted(self.used_variants())}

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def arch(self) -> Arch:
        """The board's target under the names build systems use (``self.arch.gnu_host``,
        ``.linux_arch``, ``.kernel_image`` …; fwbuild.arch)."""
        return target_arch(self.board.target.arch, self.board.target.cpu)

    @property
    def host_triplet(self) -> str:
        """The GNU ``--host`` for this package: the kind's ``host`` when a recipe sets one,
        else the one config.sub accepts for the board's target (``i586-pc-linux-gnu``)."""
        return getattr(self, "host", None) or self.arch.gnu_host

    def expand(self, template: str) -> str:
        """A template naming only board-level values (``{arch.kernel_image_name}``, ``{name}``,
        ``{version}``, ``{host}``): for declarations read outside a stage (``image_files``)."""
        return expand(template, board_values(self), where=str(self.recipe_file))

    def _fill_board_templates(self) -> None:
        """Declarations that name the board's target (a kernel's image) are filled in once."""
        if any("{" in k + v for k, v in self.image_files.items()):
            expanded = {self.expand(k): self.expand(v) for k, v in self.image_files.items()}
            self.image_files = expanded  # type: ignore[misc]  # per board, not per class

    def validate(self) -> None:
        """Check the board's settings for this package when the project loads (fail early)."""

    def runtime_inputs(self) -> object:
        """For ``dynamic`` packages: a JSON-able digest of what the install stage reads."""
        return None

    def protected_paths(self) -> dict[Path, str]:
        """Files and directories outside the build that the package's steps keep (a PKI
        directory, a secrets file), ``path -> what it is``: no tree the build replaces or removes
        may be one of them, hold one or lie inside one (``fwbuild.trees``)."""
        return {}

    def post_patch(self, tree: Path, local_file: Callable[[str], Path]) -> None:
        """Change the fresh tree after the patch series (still under its temporary name).

        ``local_file(filename)`` is where a declared source or patch was fetched to. Raise a
        BuildError to abandon the tree: nothing is left half-prepared.
        """

    # --- the board, read only through what the recipe declares -------------------------------
    # The configure key covers ``board_sections`` and ``board_files`` and nothing else of the
    # board, so these are the only ways a recipe reads either: each refuses what the recipe did
    # not declare (as ``variant()`` does), and ``self.board`` hides the sections' raw contents
    # (fwbuild.boardview), so no read can escape the key.
    def __post_init__(self) -> None:
        from fwbuild.boardview import BoardView

        if not isinstance(self.board, BoardView):
            object.__setattr__(self, "board", BoardView(self.board, self))
        self._fill_board_templates()

    def check_section(self, section: str) -> None:
        if section not in self.board_sections:
            declared = ", ".join(self.board_sections) or "none"
            raise ConfigError(
                f"{self.recipe_file}: the recipe reads the board's [{section}] without declaring "
                f"it (board_sections: {declared}); add {section!r} to `board_sections = (...)` "
                "(and its model to `settings`) so that changing it rebuilds the package",
                package=self.name,
            )

    def setting(self, section: str) -> Mapping[str, Any]:
        """The board's ``[section]`` (validated against its model when the project loaded; empty
        when the board leaves it out), read-only. Refused unless in ``board_sections``."""
        from fwbuild.boardview import unwrap

        self.check_section(section)
        table = unwrap(self.board).data.get(section, {})
        return MappingProxyType(table if isinstance(table, dict) else {})

    def board_file(self, rel: str) -> Path:
        """The board file ``rel`` (relative to the project). Refused unless in ``board_files``:
        their contents are part of the configure key."""
        if rel not in self.board_files:
            declared = ", ".join(self.board_files) or "none"
            raise ConfigError(
                f"{self.recipe_file}: the recipe reads the board file {rel} without declaring it "
                f"(board_files: {declared}); add it to `board_files = (...)` so that editing it "
                "rebuilds the package",
                package=self.name,
            )
        return self.board.paths.project / rel

    # --- steps; ``ctx`` gives the environment, directories and a logged ``run`` ---------------
    def run_steps(self, ctx: Context, steps: tuple[Step, ...]) -> None:
        """Run declared steps in order, skipping those whose ``when`` does not hold."""
        for step in steps:
            if self.when(step.when):
                step.run(self, ctx)

    def configure(self, ctx: Context) -> None:
        """Prepare the tree for building: the declared ``configure_steps``."""
        self.run_steps(ctx, self.configure_steps)

    def build(self, ctx: Context) -> None:
        """Compile: the declared ``build_steps``."""
        self.run_steps(ctx, self.build_steps)

    def default_install_steps(self) -> tuple[Step, ...]:
        """The kind's install commands when the recipe declares neither ``install_steps`` nor
        ``install_files`` (the generic package has none)."""
        return ()

    def kind_commands(self) -> list[tuple[str, str]]:
        """``(stage, command)`` the kind runs besides the declared steps, for ``doit info``."""
        return []

    def install(self, ctx: Context) -> None:
        """Install into ``ctx.staging`` (the package's own DESTDIR)."""
        # the declared install_steps (or the kind's), then install_files and install_links
        steps = self.install_steps
        if steps is None:
            steps = () if self.install_files else self.default_install_steps()
        self.run_steps(ctx, steps)
        install_declared(self, ctx)


# What a toolchain gives a plain Makefile on make's command line (those it sets).
TOOLCHAIN_MAKE_VARIABLES = ("CC", "AR", "RANLIB", "CFLAGS", "LDFLAGS")


class MakePackage(Package):
    """A plain Makefile: ``make`` then ``make DESTDIR=… install``, with the toolchain's
    CC/AR/RANLIB/CFLAGS/LDFLAGS and the recipe's ``make_variables`` on the command line.
    With ``install_files``, those are copied instead of running ``make install``."""

    def make_args(self, ctx: Context) -> list[str]:
        """Further arguments for every make run (a hook for recipes that compute them)."""
        return []

    def install_args(self, ctx: Context) -> list[str]:
        return [f"DESTDIR={ctx.staging}", "install"]

    def kind_commands(self) -> list[tuple[str, str]]:
        tools = " ".join(f"{k}={{{k}}}" for k in TOOLCHAIN_MAKE_VARIABLES)
        found = [] if self.build_steps else [("build", f"make {tools}")]
        if self.install_steps is None and not self.install_files:
            found.append(("install", f"make {tools} DESTDIR={{staging}} install"))
        return found

    def toolchain_make_vars(self, ctx: Context) -> list[str]:
        env = ctx.env
        return [f"{k}={env[k]}" for k in TOOLCHAIN_MAKE_VARIABLES if k in env]

    def _declared_make_vars(self, ctx: Context) -> list[str]:
        from fwbuild.commands import step_values

        values = step_values(self, ctx)
        where = f"{self.recipe_file}: make_variables"
        return [f"{k}={expand(v, values, where=where)}" for k, v in self.make_variables.items()]

    def build(self, ctx: Context) -> None:
        if self.build_steps:
            self.run_steps(ctx, self.build_steps)
            return
        ctx.make(
            *self.toolchain_make_vars(ctx), *self._declared_make_vars(ctx), *self.make_args(ctx)
        )

    def install(self, ctx: Context) -> None:
        if self.install_steps is not None or self.install_files:
            super().install(ctx)
            return
        ctx.make(
            *self.toolchain_make_vars(ctx),
            *self._declared_make_vars(ctx),
            *self.make_args(ctx),
            *self.install_args(ctx),
            jobs=1,
        )


class AutotoolsPackage(Package):
    """``./configure --host=… --build=… --prefix=… <configure_options>``, ``make``,
    ``make DESTDIR=… install`` (or ``install_files`` copied instead).

    ``host`` is the GNU triplet the board's target has for config.sub (``i586-pc-linux-gnu``);
    a recipe sets it only for a package whose configure wants another spelling."""

    prefix: ClassVar[str] = "/usr"
    host: ClassVar[str | None] = None
    # Options after --host/--build/--prefix, as templates ("--with-openssl={deps[openssl]}/usr").
    configure_options: ClassVar[tuple[str, ...]] = ()
    # Values for the cross-compile cache (``ac_cv_…=yes``): what AC_TRY_RUN cannot find out.
    configure_cache: ClassVar[Mapping[str, str]] = {}
    # Declared steps run before ./configure (a Touch of shipped generated files, say).
    configure_steps: ClassVar[tuple[Step, ...]] = ()
    install_target: ClassVar[str] = "install"

    def configure_args(self, ctx: Context) -> list[str]:
        """The options after --prefix: ``configure_options`` filled in (a hook for recipes)."""
        from fwbuild.commands import step_values

        values = step_values(self, ctx)
        where = f"{self.recipe_file}: configure_options"
        return [expand(o, values, where=where) for o in self.configure_options]

    def make_args(self, ctx: Context) -> list[str]:
        from fwbuild.commands import step_values

        values = step_values(self, ctx)
        where = f"{self.recipe_file}: make_variables"
        return [f"{k}={expand(v, values, where=where)}" for k, v in self.make_variables.items()]

    def configure(self, ctx: Context) -> None:
        self.run_steps(ctx, self.configure_steps)
        ctx.run(
            "./configure",
            f"--host={self.host_triplet}",
            f"--build={ctx.build_triplet}",
            f"--prefix={self.prefix}",
            *self.configure_args(ctx),
            env=dict(self.configure_cache),
        )

    def build(self, ctx: Context) -> None:
        if self.build_steps:
            self.run_steps(ctx, self.build_steps)
            return
        ctx.make(*self.make_args(ctx))

    def default_install_steps(self) -> tuple[Step, ...]:
        return (Make(".", self.install_target, jobs=1, DESTDIR="{staging}"),)

    def kind_commands(self) -> list[tuple[str, str]]:
        options = " ".join(self.configure_options)
        found = [("configure", f"./configure --host={{host}} --build={{build}} "
                  f"--prefix={self.prefix} {options}".rstrip())]  # fmt: skip
        if not self.build_steps:
            found.append(("build", "make"))
        return found


def install_declared(pkg: Package, ctx: Context) -> None:
    """Copy ``install_files`` from the tree into staging and make ``install_links``' links."""
    import os

    from fwbuild.commands import step_values

    values = step_values(pkg, ctx) if pkg.install_files else {}
    for dest, entry in pkg.install_files.items():
        assert isinstance(entry, File)  # normalised by Package.__init_subclass__
        where = f"{pkg.recipe_file}: install_files[{dest!r}]"
        src = expand(entry.src, values, where=where)
        if not (ctx.srcdir / src).is_file():
            from fwbuild.errors import BuildError

            raise BuildError(
                f"install_files of {pkg.recipe_file} copies {src} to {dest}, but the built tree "
                f"{ctx.srcdir} has no such file; did the build make it (see the build log), or "
                "is the path wrong?",
                package=pkg.name,
            )
        ctx.install_file(src, expand(dest, values, where=where), entry.mode)
    for listing, binary in pkg.install_links.items():
        target = "/" + binary.lstrip("/")
        for line in (ctx.srcdir / listing).read_text().split():
            path = "/" + line.lstrip("/")
            if path == target:
                continue
            link = ctx.staging / path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(target, os.path.dirname(path)))


def expand_target_files(pkg: Package, staging: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(staging path, mode) of every file a package puts into the rootfs, and what is missing."""
    found: list[tuple[str, int]] = []
    missing: list[str] = []
    explicit = {p.lstrip("/") for p in pkg.target_files if not any(c in p for c in "*?[")}
    for pattern, mode in sorted(pkg.target_files.items()):
        rel = pattern.lstrip("/")
        if any(c in rel for c in "*?["):
            # a pattern takes whatever matches (an applet directory may be empty); files named
            # on their own must exist
            matches = sorted(p for p in staging.glob(rel) if p.is_symlink() or p.is_file())
            # a file named on its own keeps its own mode
            found += [
                (m.relative_to(staging).as_posix(), mode)
                for m in matches
                if m.relative_to(staging).as_posix() not in explicit
            ]
        elif (staging / rel).is_symlink() or (staging / rel).is_file():
            found.append((rel, mode))
        else:
            missing.append(pattern)
    if pkg.install_links:
        # the links a build listed: every symbolic link in staging to one of the binaries
        binaries = {(staging / b.lstrip("/")).resolve() for b in pkg.install_links.values()}
        have = {p for p, _ in found}
        for link in sorted(p for p in staging.rglob("*") if p.is_symlink()):
            rel = link.relative_to(staging).as_posix()
            if rel not in have and link.resolve() in binaries:
                found.append((rel, 0o777))
    return found, missing


def describe(cmd: list[str] | tuple[str, ...]) -> str:
    return shlex.join(str(c) for c in cmd)
