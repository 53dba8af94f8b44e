"""``doit info:<pkg>``: what a recipe declares, as ``spack info`` shows a package.

Version and licence (with the licence files' digests), the sources with their mirrors and
fallbacks, the patch series in the order it is applied (downloaded patches, then ours under
``patches/`` with the first line of their header: what each fixes, and the CVEs they name),
variants with their values on this board, the declared commands of each stage, the files it
installs (and which of them go into the rootfs), the board sections and files it reads, its
dependencies, and what each stage's stamp covers. It reads only declarations and the board: it
downloads and builds nothing.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwbuild.commands import File, Step, Variant
from fwbuild.errors import BuildError

if TYPE_CHECKING:
    from fwbuild.project import Project
    from fwbuild.recipe import Package, Source


def _summary(value: Any) -> str:
    """A stage input in a few words: the names of ``[name, digest]`` rows, ``key=value`` pairs."""
    if isinstance(value, list):
        return ", ".join(str(v[0]) if isinstance(v, list) and v else _summary(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(
            f"{k}" if isinstance(v, dict | list) else f"{k}={v}" for k, v in value.items()
        )
    return str(value)


def stage_input_lines(project: Project, name: str) -> Iterator[str]:
    """What each stage's key is made of (``Project.stage_inputs``), one line per stage."""
    from fwbuild.stages import STAGES

    for stage in STAGES:
        inputs = project.stage_inputs(name, stage)
        parts = []
        for key, value in inputs.items():
            if key in ("engine", "stage") or value in (None, [], {}, ""):
                continue
            if key in STAGES:
                parts.append(f"the {key} stage")
            else:
                parts.append(f"{key.replace('_', ' ')} ({_summary(value)})")
        yield f"    {stage:10} " + "; ".join(parts)


def patch_summary(path: Path) -> tuple[str, list[str]]:
    """A patch's header: its first line (what it fixes) and the CVE ids it names."""
    from fwbuild.cve import patch_cves

    try:
        data = path.read_bytes()
    except OSError:
        return "(not downloaded yet)", []
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    first = ""
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith(("--- ", "diff ", "Index: ", "+++ ")):
            break
        if line.strip():
            first = line.strip()
            break
    return first or "(no header)", sorted(patch_cves(path))


def _rel(project: Project, path: Path) -> str:
    try:
        return str(path.relative_to(project.board.paths.project))
    except ValueError:
        return str(path)


def _digests(source: Source) -> str:
    found = source.digests()
    return " ".join(f"{a}:{v}" for a, v in found.items()) or "no published digest (pinned)"


def _source_lines(
    project: Project, pkg: Package, source: Source, indent: str, what: str = ""
) -> Iterator[str]:
    active = pkg.when(source.when)
    when = f"  when {source.when} ({'active' if active else 'inactive'})" if source.when else ""
    yield f"{indent}{what}{source.filename}{when}"
    yield f"{indent}    {_digests(source)}"
    mirrors = [m for m in (project.board.primary_mirror,) if m]
    for mirror in mirrors:
        yield f"{indent}    primary mirror {mirror}/{source.filename}"
    for url in source.urls:
        yield f"{indent}    {url}"
    for mirror in project.board.backup_mirrors:
        yield f"{indent}    backup mirror {mirror}/{source.filename}"
    for fallback in source.fallbacks:
        yield f"{indent}    fallback {fallback.filename} ({_digests(fallback)})"
        for url in fallback.urls:
            yield f"{indent}        {url}"


_BOARD_PLACEHOLDER = re.compile(r"\{(arch\.[a-z_]+|name|version|host)\}")


def board_filled(pkg: Package, text: str) -> str:
    """``text`` with the placeholders the board alone decides filled in (``{arch.linux_arch}``
    -> ``i386``); those a running stage fills (``{CC}``) are left as they are."""
    from fwbuild.commands import board_values, expand

    values = board_values(pkg)
    return _BOARD_PLACEHOLDER.sub(lambda m: expand(m[0], values, where="info"), text)


def _step_lines(pkg: Package) -> Iterator[str]:
    stages: list[tuple[str, tuple[Step, ...]]] = [
        ("configure", pkg.configure_steps),
        ("build", pkg.build_steps),
    ]
    install = pkg.install_steps
    if install is None:
        install = () if pkg.install_files else pkg.default_install_steps()
    stages.append(("install", install))
    implicit = pkg.kind_commands()
    for stage, steps in stages:
        for step in steps:
            when = f"  when {step.when}" if step.when else ""
            yield f"    {stage:10} {board_filled(pkg, step.describe())}{when}"
        for kind_stage, command in implicit:
            if kind_stage == stage:
                yield f"    {stage:10} {board_filled(pkg, command)}"
    if pkg.make_variables:
        shown = board_filled(pkg, " ".join(f"{k}={v}" for k, v in pkg.make_variables.items()))
        yield f"    every make: {shown}"


def describe_package(project: Project, name: str) -> str:
    """The whole ``info`` text of one package."""
    pkg = project.packages[name]
    kind = next(
        (c.__name__ for c in type(pkg).__mro__[1:] if c.__module__.startswith("fwbuild.")),
        "Package",
    )
    lines = [
        f"{pkg.name} {pkg.version}   ({_rel(project, pkg.recipe_file)}, a {kind})",
    ]
    module = sys.modules.get(type(pkg).__module__)
    doc = (getattr(module, "__doc__", "") or "").strip()
    if doc:
        lines.append(f"    {doc.splitlines()[0]}")
    if pkg.homepage:
        lines.append(f"Homepage:   {pkg.homepage}")
    lines.append(f"License:    {pkg.license}")
    files = pkg.license_files
    if files:
        lines.append("License files:")
        for rel in files:
            digest = files[rel] if isinstance(files, Mapping) else "no digest"
            lines.append(f"    {rel}  {digest}")

    lines.append("Sources:")
    if pkg.local_source:
        lines.append(f"    our own code in {pkg.local_source}/")
    for source in pkg.sources:
        lines += _source_lines(project, pkg, source, "    ")
    if not pkg.sources and not pkg.local_source:
        lines.append("    none")

    lines.append("Patches (applied in this order):")
    for patch in pkg.patches:
        lines += _source_lines(project, pkg, patch, "    ", "downloaded ")
    for own in pkg.own_patches:
        summary, cves = patch_summary(own)
        lines.append(f"    ours {_rel(project, own)}")
        lines.append(f"        {summary}" + (f"  [fixes {', '.join(cves)}]" if cves else ""))
    if not pkg.patches and not pkg.own_patches:
        lines.append("    none")

    lines.append("Variants:")
    declared = pkg.variants if isinstance(pkg.variants, Mapping) else {}
    used = sorted(pkg.used_variants())
    for variant in used:
        decl = declared.get(variant)
        about = f"  {decl.description}" if isinstance(decl, Variant) else ""
        default = (
            f" (default {str(decl.default).lower()})"
            if isinstance(decl, Variant) and decl.default is not None
            else ""
        )
        value = str(pkg.variant_value(variant)).lower()
        lines.append(f"    {variant} = {value}{default}{about}")
    if not used:
        lines.append("    none")

    lines.append(f"Depends on: {', '.join(pkg.depends) or 'nothing'}")
    needed_by = sorted(n for n, p in project.packages.items() if name in p.depends)
    lines.append(f"Needed by:  {', '.join(needed_by) or 'nothing'}")
    lines.append(f"Toolchain:  {pkg.toolchain}")

    steps = list(_step_lines(pkg))
    if steps:
        lines.append("Commands:")
        lines += steps
    lines.append("Installs (staging path <- built tree, mode):")
    for dest, entry in pkg.install_files.items():
        assert isinstance(entry, File)
        where = "" if entry.rootfs else "  (staging only, not in the rootfs)"
        dest, src = board_filled(pkg, dest), board_filled(pkg, entry.src)
        lines.append(f"    {dest} <- {src}  {entry.mode:04o}{where}")
    for listing, binary in pkg.install_links.items():
        lines.append(f"    a link to /{binary.lstrip('/')} for every path listed in {listing}")
    extra = {k: v for k, v in pkg.target_files.items() if k not in pkg.install_files}
    for pattern, mode in extra.items():
        lines.append(f"    {pattern}  {mode:04o}  (as the install step leaves it)")
    for image, rel in pkg.image_files.items():
        lines.append(f"    image {image} <- staging {rel}")
    if not (pkg.install_files or extra or pkg.image_files or pkg.install_links):
        lines.append("    nothing into the rootfs")
    for need in pkg.needs_devices:
        lines.append(f"    needs {need.path} ({need.kind} {need.major},{need.minor})")

    lines.append("Reads from the board:")
    lines.append(f"    sections: {', '.join(f'[{s}]' for s in pkg.board_sections) or 'none'}")
    lines.append(f"    files:    {', '.join(pkg.board_files) or 'none'}")
    lines.append("Each stage is redone when these change:")
    lines += stage_input_lines(project, name)
    return "\n".join(lines)


def run_info(project: Project, name: str) -> Any:
    from fwbuild.actions import guarded

    def show() -> None:
        if name not in project.packages:
            raise BuildError(f"info: {name} is not a package of this board")
        print(describe_package(project, name))

    return guarded(project, show)


def info_tasks(project: Project) -> dict[str, Callable[[], Any]]:
    """``info:<pkg>`` for every package, for ``fwbuild.tasks.make_tasks``."""
    names = list(project.packages)

    def task_info() -> Iterator[dict[str, Any]]:
        for name in names:
            yield {
                "basename": "info",
                "name": name,
                "doc": f"print what the {name} recipe declares",
                "actions": [(run_info, [project, name])],
                "uptodate": [False],
                "verbosity": 2,
            }

    # Registered under another name: doit refuses a task *creator* called like one of its
    # commands (`doit info <task>`), but not tasks of that basename, so `doit info:ppp` works.
    return {"task_package_info": task_info}
