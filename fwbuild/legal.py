"""The licence bundle of the image (Buildroot's legal-info): ``doit legal-info``.

Writes ``<output>/legal-info/``, replaced whole::

    manifest.csv            one row per package: version, licence, licence files, source, digest
    pins.lock               the digests recorded for files without published ones (if any)
    sha256sums              of every file in the bundle
    <name>-<version>/       per package: its licence files (recipe ``license_files``, taken from
                            the patched source tree build/<pkg>/src, at their paths there) and
        patches/            every patch of its series (downloaded ones and ours), with
        patches/series      the order they are applied in and their strip levels

A declared licence file that the patched tree lacks, or whose text no longer matches the digest
the recipe gives it (fwbuild.licensing), is an error naming the package, the file and both
digests; a package that declares none is listed with an empty ``license_files`` column and a
warning, and one that gives no digests with a warning too.

The rootfs stage replaces the whole output directory, so run ``doit legal-info`` after it.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from fwbuild.errors import BuildError
from fwbuild.images import write_sha256sums
from fwbuild.licensing import license_problems
from fwbuild.project import Project
from fwbuild.provenance import NOASSERTION, origin, patch_series, project_relative
from fwbuild.trees import claim, guard_for, new_tree, remove_tree, replace_tree, write_marker

DIR_NAME = "legal-info"
MANIFEST_FIELDS = (
    "package",
    "version",
    "license",
    "license_files",
    "source",
    "source_url",
    "digest",
    "patches",
)


def legal_info_dir(project: Project) -> Path:
    return project.board.paths.output / DIR_NAME


def check_license_files(project: Project) -> list[str]:
    """Every declared licence file that the patched source trees lack, as readable problems."""
    from fwbuild.cache import origin
    from fwbuild.stages import BY_NAME

    problems: list[str] = []
    for name, pkg in project.packages.items():
        src = project.srcdir(name)
        if pkg.license_files and not src.is_dir() and origin(project, name):
            BY_NAME["patch"].ensure(project, name)  # restored from the build cache: no tree yet
        if pkg.license_files and not src.is_dir():
            problems.append(
                f"{pkg.label}: no patched source tree {src} to take its licence files from; "
                f"run `doit patch:{name}`"
            )
            continue
        problems += license_problems(pkg, src)
    return problems


def _digest(digests: dict[str, str]) -> str:
    for algo in ("sha256", "sha512", "sha1", "md5"):
        if algo in digests:
            return f"{algo}:{digests[algo]}"
    return ""


def write_legal_info(project: Project) -> Path:
    """Write the bundle (all or nothing) and return its directory."""
    problems = check_license_files(project)
    if problems:
        missing = [p for p in problems if " has changed: " not in p]
        changed = [p for p in problems if " has changed: " in p]
        parts = [("missing licence files", missing), ("changed licence files", changed)]
        raise BuildError(
            " ".join(f"legal-info: {what}: " + "; ".join(found) for what, found in parts if found)
        )
    out = legal_info_dir(project)
    guard = guard_for(project)
    # The bundle goes inside the output directory: that must be the build's too (or new).
    claim(out.parent, "FWBUILD_OUTPUT_DIR ([paths] output)", guard)
    if not out.parent.is_dir() or not any(out.parent.iterdir()):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_marker(out.parent, "output directory")
    setting = f"the licence bundle {DIR_NAME} (in FWBUILD_OUTPUT_DIR)"
    # No marker of its own: the bundle lies in the output directory, whose marker covers it, and
    # its sha256sums lists every file in it.
    tmp = new_tree(out.with_name(f".{out.name}.new"), setting=setting, guard=guard, what=None)
    names: list[str] = []
    rows: list[dict[str, str]] = []
    try:
        for name in sorted(project.packages):
            pkg = project.packages[name]
            where = origin(project, pkg)
            series = patch_series(project, pkg)
            pkg_dir = tmp / pkg.label
            pkg_dir.mkdir()
            for rel in pkg.license_files:
                dest = pkg_dir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(project.srcdir(name) / rel, dest)
                names.append(f"{pkg.label}/{rel}")
            if pkg.license_files and not isinstance(pkg.license_files, Mapping):
                print(
                    f"legal-info: warning: {pkg.label}'s license_files carry no digests in "
                    f"{project_relative(project, pkg.recipe_file)}: a changed licence text would "
                    'go unnoticed; write {"FILE": "sha256:…"}',
                    file=sys.stderr,
                )
            if not pkg.license_files:
                print(
                    f"legal-info: warning: {pkg.label} ({pkg.license}) declares no license_files "
                    f"in {project_relative(project, pkg.recipe_file)}",
                    file=sys.stderr,
                )
            if series:
                (pkg_dir / "patches").mkdir()
                lines = []
                for patch in series:
                    if not patch.path.is_file():
                        raise BuildError(
                            f"patch {patch.filename} is not at {patch.path}; run "
                            f"`doit fetch:{name}`",
                            package=name,
                        )
                    dest = pkg_dir / "patches" / patch.filename
                    if dest.exists():
                        raise BuildError(
                            f"two patches of the series are named {patch.filename}; rename ours "
                            f"under {project_relative(project, patch.path.parent)}",
                            package=name,
                        )
                    shutil.copyfile(patch.path, dest)
                    names.append(f"{pkg.label}/patches/{patch.filename}")
                    how = "ours" if patch.ours else f"from {patch.url}"
                    lines.append(f"{patch.filename} -p{patch.strip} {_digest(patch.digests)} {how}")
                (pkg_dir / "patches" / "series").write_text("\n".join(lines) + "\n")
                names.append(f"{pkg.label}/patches/series")
            if where.tree_sha256:
                digest = f"tree-sha256:{where.tree_sha256}"
            else:
                digest = _digest(where.digests)
            rows.append(
                {
                    "package": name,
                    "version": pkg.version,
                    "license": pkg.license,
                    "license_files": " ".join(pkg.license_files),
                    "source": where.filename or (pkg.local_source or where.note),
                    "source_url": "" if where.url == NOASSERTION else where.url,
                    "digest": digest,
                    "patches": " ".join(p.filename for p in series),
                }
            )
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (tmp / "manifest.csv").write_text(text.getvalue())
        names.append("manifest.csv")
        pins = project.board.paths.pins
        if pins.is_file():
            shutil.copyfile(pins, tmp / "pins.lock")
            names.append("pins.lock")
        write_sha256sums(tmp, names)
    except BaseException:
        remove_tree(tmp, setting=setting, guard=guard)
        raise
    replace_tree(tmp, out, setting=setting, guard=guard)
    return out
