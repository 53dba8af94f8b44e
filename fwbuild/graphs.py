"""Pictures of the build, as Buildroot's ``graph-depends``, ``graph-build`` and ``graph-size``.

    graph-depends          the package dependency graph (``depends.svg``), and one per package
    graph-depends:<pkg>    what one package needs and what needs it (``depends-<pkg>.svg``)
    graph-build            the last build's timeline, from ``build/report.json``
    graph-size             the rootfs and the images, per package and per file

The dependency graphs are Graphviz ``.dot`` files rendered to SVG with Debian's ``dot``; with
``FWBUILD_GRAPH_STAGES=1`` (Buildroot has ``BR2_GRAPH_DEPS_OPTS``) the stage graph is drawn too:
every fetch/patch/configure/build/install task and what it waits for. The timeline and the size
chart are drawn with matplotlib (Agg, no display) as PNG and SVG, beside the tables they are drawn
from (CSV and text). ``FWBUILD_SIZE_COMPARE=<old output dir or manifest>`` makes ``graph-size``
also write and print what grew or shrank since that build; ``python3 -m fwbuild.graphs
size-compare OLD NEW`` does the same for any two builds (Buildroot's ``size-stats-compare``).

Where they go: ``<build>/graphs/<board>/``. The rootfs task replaces the output directory whole,
so pictures kept only there would vanish with every build, and writing them into a missing
output directory would make it look built. When the output directory exists, a copy goes to
``<output>/graphs/`` too, beside the firmware it describes (and it goes with that firmware when
the next build replaces it, so no stale picture ever sits beside a newer image).

Drawing is never a build: a doit run that only draws keeps the last build's ``report.json``
(``fwbuild.report``), so ``doit graph-build`` twice draws the same build twice.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwbuild.errors import BuildError
from fwbuild.fsutil import atomic_write
from fwbuild.project import STAGES
from fwbuild.sizes import INITRAMFS, Sizes, changes, human, read_budget, read_build, signed

if TYPE_CHECKING:
    from fwbuild.project import Project

PICTURE_TASKS = ("graph-depends", "graph-build", "graph-size")
STAGES_ENV = "FWBUILD_GRAPH_STAGES"
COMPARE_ENV = "FWBUILD_SIZE_COMPARE"
# One colour per stage kind, the same in every picture (and colour-blind friendly: Okabe-Ito).
STAGE_COLOURS = {
    "fetch": "#56B4E9",
    "patch": "#E69F00",
    "configure": "#CC79A7",
    "build": "#D55E00",
    "install": "#009E73",
    "other": "#999999",
}
_DOT_TIMEOUT = 120


def graphs_dir(project: Project) -> Path:
    # per board: profiles share the build directory
    return project.board.paths.build / "graphs" / project.board.name


def publish(project: Project, files: dict[str, bytes]) -> list[Path]:
    """Write each file whole (temporary name, then rename), then the copies into the output."""
    written = []
    targets = [graphs_dir(project)]
    out = project.board.paths.output
    if out.is_dir():
        targets.append(out / "graphs")
    for directory in targets:
        for name, data in files.items():
            atomic_write(directory / name, data)
            if directory == targets[0]:
                written.append(directory / name)
    return written


def _say(task: str, paths: list[Path]) -> None:
    print(f"{task}: {', '.join(str(p) for p in paths)}")


# --- graph-depends ---------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _related(project: Project, package: str | None) -> list[str]:
    """The packages a graph shows: all, or one package's dependencies and dependents."""
    if package is None:
        return list(project.packages)
    dependents = [n for n in project.packages if package in project.closure(n)]
    wanted = {package, *project.closure(package), *dependents}
    return [n for n in project.packages if n in wanted]


def depends_dot(project: Project, package: str | None = None) -> str:
    """Packages and what each depends on (an arrow points at the dependency, as Buildroot's)."""
    shown = _related(project, package)
    board = project.board
    title = f"{board.name}: package dependencies" + (f" of {package}" if package else "")
    lines = [
        "digraph depends {",
        f"  label={_q(title)}; labelloc=t; fontname=Helvetica;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fillcolor="#DCE8F5"];',
        '  edge [color="#555555"];',
    ]
    if package is None:
        top = board.name if board.name not in shown else f"{board.name} (board)"  # its own node
        lines.append(f'  {_q(top)} [shape=house, fillcolor="#F5E6C8"];')
        lines += [f"  {_q(top)} -> {_q(n)};" for n in board.packages if n in shown]
    for name in shown:
        pkg = project.packages[name]
        extra = ', penwidth=2, fillcolor="#A9C8EC"' if name == package else ""
        label = _q(name)[:-1] + "\\n" + _q(pkg.version)[1:]  # two lines: name, version
        lines.append(f"  {_q(name)} [label={label}{extra}];")
    for name in shown:
        lines += [
            f"  {_q(name)} -> {_q(dep)};" for dep in project.packages[name].depends if dep in shown
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def stages_dot(project: Project, package: str | None = None) -> str:
    """Every stage task and what runs before it (an arrow points the way the build goes), as
    ``fwbuild.tasks`` makes them: the previous stage; for configure, the dependencies' installs
    and the toolchain; for the rootfs, every install."""
    shown = _related(project, package)
    lines = [
        "digraph stages {",
        f"  label={_q(project.board.name + ': stages, in the order they run')}; labelloc=t;",
        "  rankdir=LR; fontname=Helvetica;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica];',
        '  edge [color="#555555"];',
        f'  toolchain [fillcolor="{STAGE_COLOURS["other"]}"];',
        f'  rootfs [fillcolor="{STAGE_COLOURS["other"]}"];',
    ]
    for name in shown:
        lines.append(f"  subgraph {_q('cluster_' + name)} {{ label={_q(name)};")
        for stage in STAGES:
            node = _q(f"{stage}:{name}")
            lines.append(f'    {node} [label={_q(stage)}, fillcolor="{STAGE_COLOURS[stage]}"];')
        lines.append("  }")
    for name in shown:
        for before, stage in itertools.pairwise(STAGES):
            lines.append(f"  {_q(f'{before}:{name}')} -> {_q(f'{stage}:{name}')};")
        lines += [
            f"  {_q(f'install:{dep}')} -> {_q(f'configure:{name}')};"
            for dep in project.packages[name].depends
            if dep in shown
        ]
        # every configure waits for it: light, so the packages' own edges stand out
        lines.append(f'  toolchain -> {_q(f"configure:{name}")} [color="#BBBBBB", style=dashed];')
        lines.append(f"  {_q(f'install:{name}')} -> rootfs;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_source: str, what: str) -> bytes:
    """Graphviz's ``dot -Tsvg``; a missing or failing ``dot`` is a BuildError saying what to do."""
    dot = shutil.which("dot")
    if dot is None:
        raise BuildError(
            f"{what}: Graphviz's `dot` is not installed, so the graph cannot be drawn; install "
            "Debian's graphviz package (`sudo apt-get install graphviz`; scripts/setup-debian "
            "does it)"
        )
    try:
        proc = subprocess.run(
            [dot, "-Tsvg"],
            input=dot_source.encode(),
            capture_output=True,
            check=False,
            timeout=_DOT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: `dot -Tsvg` took longer than {_DOT_TIMEOUT} s") from None
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()
        raise BuildError(f"{what}: `dot -Tsvg` failed (exit code {proc.returncode}): {err}")
    return proc.stdout


def draw_depends(project: Project, package: str | None, stages: bool) -> list[Path]:
    stem = "depends" if package is None else f"depends-{package}"
    source = depends_dot(project, package)
    files = {f"{stem}.dot": source.encode(), f"{stem}.svg": render_svg(source, stem)}
    if stages:
        stem = "stages" if package is None else f"stages-{package}"
        source = stages_dot(project, package)
        files |= {f"{stem}.dot": source.encode(), f"{stem}.svg": render_svg(source, stem)}
    return publish(project, files)


# --- graph-build -----------------------------------------------------------------------------
@dataclass
class Bar:
    task: str
    row: str  # the package, or the task itself for board-wide tasks (rootfs, toolchain)
    kind: str  # fetch … install, or "other"
    start: float
    seconds: float
    result: str
    lane: int = 0

    @property
    def end(self) -> float:
        return self.start + self.seconds


def read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(
            f"{path} does not exist: there is no build to draw yet; run a build first "
            "(`doit rootfs`), then `doit graph-build`"
        ) from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path} is not a readable build report ({exc}); build again") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise BuildError(f"{path} is not a build report (no list of tasks); build again")
    return data


def timeline(report: dict[str, Any]) -> list[Bar]:
    """One bar per task that ran (or failed) and has its times, lanes assigned."""
    bars = []
    for t in report["tasks"]:
        if not isinstance(t, dict) or t.get("result") not in {"ran", "failed"}:
            continue
        start, seconds = t.get("offset"), t.get("seconds")
        if not isinstance(start, int | float) or not isinstance(seconds, int | float):
            continue  # e.g. a task interrupted before doit reported its end
        stage = str(t.get("stage") or "")
        package = t.get("package")
        bars.append(
            Bar(
                task=str(t["task"]),
                row=str(package) if package else str(t["task"]),
                kind=stage if stage in STAGES else "other",
                start=float(start),
                seconds=float(seconds),
                result=str(t["result"]),
            )
        )
    bars.sort(key=lambda b: (b.start, b.task))
    lane_ends: list[float] = []
    for bar in bars:  # the first lane free when the task started: doit -n N shows N lanes
        free = [i for i, end in enumerate(lane_ends) if end <= bar.start + 1e-3]
        if free:
            bar.lane = free[0]
            lane_ends[bar.lane] = bar.end
        else:
            bar.lane = len(lane_ends)
            lane_ends.append(bar.end)
    return bars


def timeline_table(bars: list[Bar]) -> tuple[bytes, bytes]:
    """The table the picture is drawn from: CSV, and text for people."""
    fields = ["task", "row", "kind", "start_s", "seconds", "end_s", "lane", "result"]
    rows = [
        [b.task, b.row, b.kind, f"{b.start:.3f}", f"{b.seconds:.3f}", f"{b.end:.3f}",
         b.lane + 1, b.result]
        for b in bars
    ]  # fmt: skip
    raw = io.StringIO()
    writer = csv.writer(raw, lineterminator="\n")
    writer.writerow(fields)
    writer.writerows(rows)
    width = max([len("task"), *(len(b.task) for b in bars)])
    text = [f"{'task':<{width}}  {'start s':>8}  {'seconds':>8}  {'end s':>8}  lane  result"]
    text += [
        f"{b.task:<{width}}  {b.start:8.2f}  {b.seconds:8.2f}  {b.end:8.2f}  {b.lane + 1:>4}  "
        f"{b.result}"
        for b in bars
    ]
    return raw.getvalue().encode(), ("\n".join(text) + "\n").encode()


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; set before any figure exists
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, testable
    matplotlib.rcParams["svg.hashsalt"] = "fwbuild"  # stable ids: the same build, the same SVG
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Any) -> tuple[bytes, bytes]:
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return png.getvalue(), svg.getvalue()


def _legend(fig: Any, kinds: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=STAGE_COLOURS[k], label=k) for k in kinds]
    if handles:  # below the axes, never over a bar
        fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=len(handles))


def draw_timeline(bars: list[Bar], report: dict[str, Any]) -> tuple[bytes, bytes]:
    rows: list[str] = []
    for bar in bars:  # in the order they first started
        if bar.row not in rows:
            rows.append(bar.row)
    lanes = max((b.lane for b in bars), default=-1) + 1
    total = float(report.get("seconds") or max((b.end for b in bars), default=0.0))
    fig = _figure(11, 1.9 + 0.32 * (len(rows) + lanes) + 0.6)
    top, bottom = fig.subplots(
        2, 1, sharex=True, height_ratios=[max(len(rows), 1), max(lanes, 1) + 0.5]
    )
    started = str(report.get("started", "?"))
    started = started[:10] + " " + started[11:19] + " UTC" if len(started) >= 19 else started
    title = (
        f"{report.get('board', '?')}: build of {started}, "
        f"{len(bars)} tasks ran in {total:.1f} s ({report.get('result', '?')})"
    )
    fig.suptitle(title, fontsize=11)
    edge = {"ran": "none", "failed": "black"}
    for bar in bars:
        y = rows.index(bar.row)
        for ax, where, gid in ((top, y, "bar"), (bottom, bar.lane, "lane")):
            rect = ax.barh(
                where,
                max(bar.seconds, total / 1000),  # a 0.00 s stage still shows as a sliver
                left=bar.start,
                height=0.7,
                color=STAGE_COLOURS[bar.kind],
                edgecolor=edge.get(bar.result, "none"),
                hatch="//" if bar.result == "failed" else None,
            )[0]
            rect.set_gid(f"{gid}:{bar.task}")
        if total and bar.seconds > total * 0.06:  # the name, where it fits
            bottom.text(bar.start + bar.seconds / 2, bar.lane, bar.task, ha="center",
                        va="center", fontsize=7, clip_on=True)  # fmt: skip
    top.set_yticks(range(len(rows)), rows, fontsize=8)
    top.set_ylim(len(rows) - 0.5, -0.5)
    top.set_title("by package (one bar per stage)", fontsize=9, loc="left")
    bottom.set_yticks(range(lanes), [f"lane {i + 1}" for i in range(lanes)], fontsize=8)
    bottom.set_ylim(lanes - 0.5 + 0.5, -0.5)
    bottom.set_title("parallel lanes (doit -n N runs N tasks at once)", fontsize=9, loc="left")
    bottom.set_xlabel("seconds after the build started")
    bottom.set_xlim(0, max(total, 1e-3) * 1.01)
    for ax in (top, bottom):
        ax.grid(axis="x", alpha=0.3)
    _legend(fig, [k for k in STAGE_COLOURS if any(b.kind == k for b in bars)])
    if not bars:
        top.text(0.5, 0.5, "no task ran in this build (everything was up to date)",
                 transform=top.transAxes, ha="center", va="center")  # fmt: skip
    return _save(fig)


def draw_build(project: Project) -> list[Path]:
    report = read_report(project.report_path)
    bars = timeline(report)
    table_csv, table_txt = timeline_table(bars)
    png, svg = draw_timeline(bars, report)
    return publish(
        project,
        {"build.png": png, "build.svg": svg, "build.csv": table_csv, "build.txt": table_txt},
    )


# --- graph-size ------------------------------------------------------------------------------
def image_roles(project: Project) -> dict[str, str]:
    """What each image of the output is, for labels: ``bzImage`` -> ``kernel (linux)``."""
    roles = {
        image: f"image of {name}"
        for name, pkg in project.packages.items()
        for image in pkg.image_files
    }
    roles[INITRAMFS] = "initramfs, compressed"
    roles["rootfs.tar"] = "rootfs tar"
    roles["rootfs.ext2"] = "rootfs ext2"
    return roles


def size_tables(sizes: Sizes, roles: dict[str, str]) -> dict[str, bytes]:
    total = sizes.total or 1
    counts = sizes.file_counts()

    def table(fields: list[str], rows: list[list[Any]]) -> bytes:
        raw = io.StringIO()
        writer = csv.writer(raw, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows(rows)
        return raw.getvalue().encode()

    packages = [[p, counts[p], n, f"{100 * n / total:.1f}"] for p, n in sizes.packages().items()]
    files = [[f.path, f.package, f.size] for f in sizes.biggest(top=len(sizes.files))]
    images = [[name, roles.get(name, ""), n] for name, n in sizes.images.items()]
    return {
        "size-packages.csv": table(["package", "files", "bytes", "percent"], packages),
        "size-files.csv": table(["path", "package", "bytes"], files),
        "size-images.csv": table(["image", "what", "bytes"], images),
    }


def size_text(sizes: Sizes, roles: dict[str, str], project: Project) -> str:
    budget = read_budget(project)
    total = sizes.total
    lines = [f"rootfs files (stripped) per package, from {sizes.source}:", ""]
    width = max([len("package"), *(len(p) for p in sizes.packages())])
    lines.append(f"  {'package':<{width}}  {'files':>5}  {'bytes':>10}  {'':>10}  share  limit")
    counts = sizes.file_counts()
    for p, n in sizes.packages().items():
        limit = budget.package_limits.get(p)
        over = " OVER" if limit is not None and n > limit else ""
        shown = f"{human(limit)}{over}" if limit is not None else ""
        lines.append(
            f"  {p:<{width}}  {counts[p]:>5}  {n:>10}  {human(n):>10}  "
            f"{100 * n / (total or 1):4.0f}%  {shown}"
        )
    budget_note = f", budget {human(budget.max_size)}" if budget.max_size else ""
    lines += [f"  {'total':<{width}}  {len(sizes.files):>5}  {total:>10}  {human(total):>10}"
              f"{budget_note}", "", "images:", ""]  # fmt: skip
    for name, n in sizes.images.items():
        note = ""
        if name == INITRAMFS and budget.max_initramfs:
            note = f", budget {human(budget.max_initramfs)}"
        lines.append(f"  {name:<16} {n:>10}  {human(n):>10}  {roles.get(name, '')}{note}")
    return "\n".join(lines) + "\n"


def _unit(values: Sequence[int | None]) -> tuple[int, str]:
    """KiB, or MiB for bigger axes: ticks at round numbers of the units the labels use."""
    top = max((v for v in values if v), default=0)
    return (1 << 20, "MiB") if top >= 4 << 20 else (1 << 10, "KiB")


def _size_panel(
    ax: Any, bars: list[tuple[str, int, int | None, str]], title: str, gid: str
) -> None:
    """Horizontal bars (label, bytes, limit or None, colour), a dashed line at each limit."""
    div, unit = _unit([v for _, n, limit, _ in bars for v in (n, limit)])
    ax.barh(range(len(bars)), [n / div for _, n, _, _ in bars],
            color=[c for _, _, _, c in bars], gid=gid)  # fmt: skip
    for y, (_, n, limit, _) in enumerate(bars):
        ax.text(n / div, y, f" {human(n)}", va="center", fontsize=8)
        if limit is not None:
            ax.plot([limit / div] * 2, [y - 0.4, y + 0.4], color="#D55E00", linestyle="--")
            ax.text(limit / div, y - 0.42, f"limit {human(limit)}", color="#D55E00",
                    fontsize=7, ha="center", va="bottom")  # fmt: skip
    ax.set_yticks(range(len(bars)), [label for label, _, _, _ in bars], fontsize=8)
    ax.set_ylim(len(bars) - 0.5, -0.8)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xlabel(unit)
    ax.margins(x=0.25)
    ax.grid(axis="x", alpha=0.3)


def draw_size(sizes: Sizes, roles: dict[str, str], project: Project) -> tuple[bytes, bytes]:
    budget = read_budget(project)
    packages = sizes.packages()
    fig = _figure(11, 1.9 + 0.34 * max(len(packages), len(sizes.images) + 1))
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    fig.suptitle(
        f"{project.board.name}: rootfs {human(sizes.total)} in {len(sizes.files)} files; "
        f"initramfs {human(sizes.images.get(INITRAMFS, 0))}",
        fontsize=11,
    )
    _size_panel(
        left,
        [(p, n, budget.package_limits.get(p), "#0072B2") for p, n in packages.items()],
        "rootfs files per package (stripped)",
        "packages",
    )
    images = [("rootfs files", sizes.total, budget.max_size, "#999999")]
    for name, n in sizes.images.items():
        kernel = roles.get(name, "").startswith("image of")
        colour = "#E69F00" if kernel else "#009E73" if name == INITRAMFS else "#999999"
        label = f"{name}\n({roles[name]})" if name in roles else name
        images.append((label, n, budget.max_initramfs if name == INITRAMFS else None, colour))
    _size_panel(right, images, "rootfs and images", "images")
    return _save(fig)


def compare_text(old: Sizes, new: Sizes, threshold: int = 0) -> str:
    """What grew and shrank between two builds, per package, per file and per image."""

    def section(title: str, before: dict[str, int], after: dict[str, int], what: str) -> list[str]:
        found = [c for c in changes(before, after) if abs(c.delta) >= threshold]
        lines = [f"{title} (bytes; threshold {threshold}):", ""]
        lines.append(f"  {'old':>10} {'new':>10} {'delta':>10}  {what}")
        for c in found:
            note = " (new)" if c.old is None else " (gone)" if c.new is None else ""
            lines.append(f"  {c.old or 0:>10} {c.new or 0:>10} {c.delta:>+10}  {c.name}{note}")
        if not found:
            lines.append("  (no change)")
        a, b = sum(before.values()), sum(after.values())
        lines += [f"  {a:>10} {b:>10} {b - a:>+10}  TOTAL ({signed(b - a)})", ""]
        return lines

    lines = [f"old: {old.source}", f"new: {new.source}", ""]
    lines += section("Size difference per package", old.packages(), new.packages(), "package")
    lines += section(
        "Size difference per file",
        {p: f.size for p, f in old.files.items()},
        {p: f.size for p, f in new.files.items()},
        "file",
    )
    if old.images or new.images:
        lines += section("Size difference per image", old.images, new.images, "image")
    return "\n".join(lines)


def draw_sizes(project: Project) -> list[Path]:
    sizes = read_build(project.board.paths.output)
    roles = image_roles(project)
    files = size_tables(sizes, roles)
    files["size.txt"] = size_text(sizes, roles, project).encode()
    files["size.png"], files["size.svg"] = draw_size(sizes, roles, project)
    old = os.environ.get(COMPARE_ENV)
    if old:
        text = compare_text(read_build(Path(old).expanduser().resolve()), sizes)
        files["size-compare.txt"] = text.encode()
        print(text)
    return publish(project, files)


# --- doit ------------------------------------------------------------------------------------
def run_depends(project: Project, package: str | None) -> Any:
    from fwbuild.actions import guarded

    stages = os.environ.get(STAGES_ENV, "0") not in {"", "0"}
    task = "graph-depends" + (f":{package}" if package else "")
    return guarded(project, lambda: _say(task, draw_depends(project, package, stages)))


def run_build(project: Project) -> Any:
    from fwbuild.actions import guarded

    return guarded(project, lambda: _say("graph-build", draw_build(project)))


def run_size(project: Project) -> Any:
    from fwbuild.actions import guarded

    return guarded(project, lambda: _say("graph-size", draw_sizes(project)))


def graph_tasks(project: Project) -> dict[str, Callable[[], Any]]:
    """The three picture tasks, for ``fwbuild.tasks.make_tasks``. Checks the board's size
    budget now, so a bad value stops the build before anything runs."""
    read_budget(project)
    names = list(project.packages)

    def task_graph_depends_all() -> dict[str, Any]:
        return {
            "basename": "_graph-depends",  # hidden: `doit graph-depends` runs it
            "actions": [(run_depends, [project, None])],
            "uptodate": [False],
            "verbosity": 2,
        }

    def task_graph_depends() -> Iterator[dict[str, Any]]:
        yield {
            "basename": "graph-depends",
            "name": None,
            "doc": "draw the package dependency graph (SVG) into <build>/graphs/<board>/; "
            f"{STAGES_ENV}=1 draws the stage graph too",
            "task_dep": ["_graph-depends"],
        }
        for name in names:
            yield {
                "basename": "graph-depends",
                "name": name,
                "doc": f"draw what {name} depends on and what depends on it",
                "actions": [(run_depends, [project, name])],
                "uptodate": [False],
                "verbosity": 2,
            }

    def task_graph_build() -> dict[str, Any]:
        return {
            "basename": "graph-build",
            "doc": "draw the last build's timeline (PNG, SVG, CSV): a bar per stage, doit -n lanes",
            "actions": [(run_build, [project])],
            "uptodate": [False],
            "verbosity": 2,
        }

    def task_graph_size() -> dict[str, Any]:
        return {
            "basename": "graph-size",
            "doc": "draw the rootfs and image sizes per package (PNG, SVG, CSV); "
            f"{COMPARE_ENV}=<old output> compares",
            "actions": [(run_size, [project])],
            "uptodate": [False],
            "verbosity": 2,
        }

    return {
        "task_graph_depends_all": task_graph_depends_all,
        "task_graph_depends": task_graph_depends,
        "task_graph_build": task_graph_build,
        "task_graph_size": task_graph_size,
    }


# --- python3 -m fwbuild.graphs size-compare OLD NEW ------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m fwbuild.graphs",
        description="Compare the sizes of two builds (as Buildroot's size-stats-compare).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    compare = sub.add_parser(
        "size-compare", help="what grew and shrank: per package, per file, per image"
    )
    compare.add_argument("old", type=Path, help="the old build: an output directory or manifest")
    compare.add_argument("new", type=Path, help="the new build: an output directory or manifest")
    compare.add_argument(
        "-t", "--threshold", type=int, default=0, help="hide changes smaller than this (bytes)"
    )
    args = parser.parse_args(argv)
    try:
        print(compare_text(read_build(args.old), read_build(args.new), args.threshold))
    except BuildError as exc:
        print(f"fwbuild: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
