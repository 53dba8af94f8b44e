"""Package kinds beyond fwbuild.recipe's generic ones; recipes import every kind from here.

``KconfigPackage``: a tree configured with Kconfig (Linux, BusyBox, …). Its configure stage is

    make <kconfig_base>              defconfig, allnoconfig, … (the tree's own starting point)
    merge the board's fragments      ``[kconfig] <package> = [...]`` in the board file, in order
    make oldconfig                   the tree's Kconfig settles dependencies and defaults
    read back every wanted value     oldconfig silently drops a symbol whose dependencies are
                                     unmet: that is an error naming the symbol, what it became
                                     and its ``depends on`` with their values (fwbuild.kconfig)

The fragments are board files: which options a board wants is the board's choice, so they are
listed in the board file, not the recipe::

    [kconfig]
    busybox = ["configs/busybox.fragment"]
    linux = ["configs/linux/siso.fragment",
             { file = "configs/linux/mppc.fragment", when = "+mppc" }]

Their contents and the list are part of the configure stamp (``board_files``, ``[kconfig]``), a
variant named in a ``when`` too. ``menuconfig`` and ``savedefconfig`` are provided for a recipe to
offer as extra tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fwbuild.commands import Make, Run, Touch, Variant, step_values
from fwbuild.errors import BuildError, ConfigError
from fwbuild.kconfig import merge, parse_fragment, read_config, verify
from fwbuild.recipe import (
    AutotoolsPackage,
    DeviceNeed,
    File,
    GitSource,
    MakePackage,
    Package,
    Patch,
    Source,
)

if TYPE_CHECKING:
    from fwbuild.steps import Context

__all__ = [
    "AutotoolsPackage", "DeviceNeed", "File", "GitSource", "KconfigPackage", "Make",
    "MakePackage", "Package", "Patch", "Run", "Source", "Touch", "Variant",
]  # fmt: skip

KCONFIG_SECTION = "kconfig"
# What oldconfig reads from stdin: an empty answer (the default) to every question it asks.
_DEFAULT_ANSWERS = b"\n" * 5000


class KconfigPackage(Package):
    """A Kconfig tree: base config, the board's fragments, oldconfig, every value read back."""

    # The make goal that writes the starting .config.
    kconfig_base: ClassVar[str] = "defconfig"
    # allnoconfig writes every int/string symbol as 0/"": drop those before merging, so
    # oldconfig gives them their Kconfig defaults (else enabling line editing in BusyBox would
    # keep FEATURE_EDITING_MAX_LEN=0).
    kconfig_drop_base_values: ClassVar[bool] = False
    # False: a symbol left at =m is an error (a board that builds everything in).
    kconfig_modules: ClassVar[bool] = True
    # Where the tree keeps its default configuration, for savedefconfig (a template).
    kconfig_defconfig: ClassVar[str] = ""
    board_sections: ClassVar[tuple[str, ...]] = (KCONFIG_SECTION,)

    # --- the board's fragments ------------------------------------------------------------------
    def _fragment_entries(self) -> list[tuple[str, str | None]]:
        entries = self.setting(KCONFIG_SECTION).get(self.name)
        if not entries:
            raise ConfigError(
                f"{self.board.file}: {self.name} is configured with Kconfig fragments, but "
                f"[{KCONFIG_SECTION}] {self.name} lists none; add "
                f'`{self.name} = ["configs/{self.name}.fragment"]` under [{KCONFIG_SECTION}] '
                "(an empty fragment file keeps the tree's base configuration)",
                package=self.name,
            )
        found: list[tuple[str, str | None]] = []
        for entry in entries:
            if isinstance(entry, str):
                found.append((entry, None))
            else:  # the schema has checked the shape: {file = "...", when = "+variant"}
                found.append((entry["file"], entry.get("when")))
        return found

    def fragment_files(self) -> list[str]:
        """The board's fragments that apply (their ``when`` holds), project-relative, in order."""
        return [f for f, when in self._fragment_entries() if self.when(when)]

    @property
    def board_files(self) -> tuple[str, ...]:  # type: ignore[override]  # per board, not class
        """Every fragment the board lists for the package (those of other variants too: a
        variant change is in the stamp anyway, and an edit to any listed fragment is seen)."""
        return tuple(f for f, _ in self._fragment_entries())

    def used_variants(self) -> set[str]:
        used = super().used_variants()
        for _, when in self._fragment_entries():
            used.update(term[1:] for term in (when or "").split())
        return used

    def validate(self) -> None:
        super().validate()
        project = self.board.paths.project
        for rel in self.board_files:
            if not (project / rel).is_file():
                raise ConfigError(
                    f"{self.board.file}: [{KCONFIG_SECTION}] {self.name} lists {rel}, which does "
                    f"not exist under {project}; create it or fix the name",
                    package=self.name,
                )

    # --- steps --------------------------------------------------------------------------------
    def configure(self, ctx: Context) -> None:
        self.run_steps(ctx, self.configure_steps)
        project = self.board.paths.project
        fragments = [project / f for f in self.fragment_files()]
        wanted: dict[str, str] = {}
        for fragment in fragments:
            wanted.update(parse_fragment(fragment))
        # From the base every time: a symbol dropped from a fragment must not linger.
        Make(".", self.kconfig_base, jobs=1).run(self, ctx)
        config = ctx.srcdir / ".config"
        if self.kconfig_drop_base_values:
            kept = [
                line
                for line in config.read_text().splitlines()
                if not (line.startswith("CONFIG_") and line.split("=", 1)[1] not in ("y", "m"))
            ]
            config.write_text("\n".join(kept) + "\n")
        merge(config, wanted)
        # oldconfig asks about every symbol without a value; an empty answer takes the default.
        Make(".", "oldconfig", jobs=1, input=_DEFAULT_ANSWERS).run(self, ctx)
        source = " + ".join(str(f) for f in fragments)
        verify(config, wanted, ctx.srcdir, package=self.name, source=Path(source))
        if not self.kconfig_modules:
            leftover = sorted(k for k, v in read_config(config).items() if v == "m")
            if leftover:
                raise BuildError(
                    f"the {self.name} config has modules ({', '.join(leftover)}) although the "
                    f"board builds everything in; set them to y or n in {source}",
                    package=self.name,
                )

    def kind_commands(self) -> list[tuple[str, str]]:
        fragments = " + ".join(self.fragment_files())
        return [
            ("configure", f"make {self.kconfig_base}"),
            ("configure", f"merge {fragments}"),
            ("configure", "make oldconfig; every value of the fragments read back"),
        ]

    def menuconfig(self, ctx: Context) -> None:
        """The tree's menuconfig on its configured tree (the user's terminal)."""
        values = step_values(self, ctx)
        argv = Make(".", "menuconfig", jobs=1).argv(self, values)
        ctx.run(*argv, interactive=True)

    def savedefconfig(self, ctx: Context) -> None:
        """Write the configured tree's differences from its defconfig as a fragment beside the
        board's first one (``saved.fragment``), to fold into the board's fragments."""
        from fwbuild.commands import expand

        rel = expand(self.kconfig_defconfig, step_values(self, ctx), where=str(self.recipe_file))
        defaults = read_config(ctx.srcdir / rel) if rel else {}
        current = read_config(ctx.srcdir / ".config")
        changed = {k: v for k, v in sorted(current.items()) if defaults.get(k, "n") != v}
        dropped = {k: "n" for k in sorted(defaults) if k not in current and defaults[k] != "n"}
        first = self.board.paths.project / self.fragment_files()[0]
        out = first.with_name("saved.fragment")
        lines = [
            f"# Saved by `doit savedefconfig:{self.name}`: the tree's .config against "
            f"{rel or 'an empty configuration'}.",
            f"# Fold what you want to keep into {first.name} (with a comment saying why).",
        ]
        for k, v in {**changed, **dropped}.items():
            lines.append(f"# {k} is not set" if v == "n" else f"{k}={v}")
        out.write_text("\n".join(lines) + "\n")
        print(f"{self.name}: {len(lines) - 2} differences from defconfig written to {out}")
