"""``doit source-check``: is every source still downloadable, from which mirrors?

Asks every URL of every source and patch of the board (and of their fallbacks, with the primary
and backup mirrors in front and behind, as the downloader would try them) without downloading
anything, a few at a time in threads, each within a bounded time:

* ``http(s)``: ``HEAD``; when a server does not answer HEAD usefully, a ``GET`` of the first
  byte (``Range: bytes=0-0``, whose ``Content-Range`` gives the size);
* ``git+…``: ``git ls-remote`` (the commit is confirmed when it is a branch or tag tip; a
  commit deeper in the history can only be seen by fetching, so then the repository is
  "alive");
* ``file``: the file exists.

It prints a table, one row per URL: ``ok`` (alive, and the size matches the copy in the download
directory or the pin lock file), ``size`` (alive but a different size: a different file),
``alive`` (alive, nothing to compare the size with), ``dead`` (with the reason), ``unpinned``
(alive, but the file has no digest, so a build could not use it). It fails when a declared
source has no live URL left among the pinned alternatives (or an override standing for it):
the nightly workflow runs it before the build so a dead host is reported as such, not as a
failed build.
"""

from __future__ import annotations

import concurrent.futures
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fwbuild.project import Project
    from fwbuild.recipe import Source

#: Seconds one URL may take (connect + answer); FWBUILD_CHECK_TIMEOUT overrides it.
DEFAULT_TIMEOUT = 15.0
WORKERS = 8
USER_AGENT = "fwbuild-source-check/0.1"


@dataclass
class Row:
    package: str
    declared: str  # the recipe's file name
    filename: str  # the alternative this URL serves (the declared file or a fallback)
    url: str
    pinned: bool
    expected_size: int | None
    state: str = "?"  # ok, size, alive, dead, unpinned
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.pinned and self.state in ("ok", "alive")


def _known_size(project: Project, alt: Source) -> int | None:
    from fwbuild.fetch import is_verified

    path = project.board.paths.downloads / alt.filename
    digests = project.remote_digests(alt)
    if digests and is_verified(path, digests):
        return path.stat().st_size
    return project.pins.size(alt.filename)


def _candidates(project: Project, alt: Source) -> list[str]:
    board = project.board

    def on(base: str) -> str:
        return f"{base.rstrip('/')}/{urllib.parse.quote(alt.filename)}"

    urls = [on(board.primary_mirror)] if board.primary_mirror else []
    urls += list(alt.urls)
    urls += [on(b) for b in board.backup_mirrors if b]
    return list(dict.fromkeys(urls))


def plan(project: Project) -> tuple[list[Row], dict[tuple[str, str], str]]:
    """Every URL to ask, and the declared sources standing on an override (not a mirror)."""
    from fwbuild.alternatives import alternatives

    rows: list[Row] = []
    overridden: dict[tuple[str, str], str] = {}
    for name, pkg in project.packages.items():
        override = project.overrides.packages.get(name)
        for index, source in enumerate([*pkg.active_sources(), *pkg.active_patches()]):
            if index == 0 and override:
                overridden[(name, source.filename)] = "package override"
                continue
            for alt in alternatives(source):
                local = project.overrides.files.get(alt.filename)
                if local:
                    overridden[(name, source.filename)] = f"override {local.path}"
                pinned = bool(project.remote_digests(alt))
                size = _known_size(project, alt)
                for url in _candidates(project, alt):
                    rows.append(Row(name, source.filename, alt.filename, url, pinned, size))
    return rows, overridden


def _probe_http(url: str, timeout: float) -> tuple[bool, int | None, str]:
    """(alive, size or None, detail)."""
    import requests

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    try:
        with requests.head(url, timeout=timeout, allow_redirects=True, headers=headers) as r:
            if r.status_code in (404, 410):
                return False, None, f"HTTP {r.status_code}"
            length = r.headers.get("Content-Length")
            if r.status_code == 200 and length and length.isdigit():
                return True, int(length), f"HTTP {r.status_code} (HEAD)"
        with requests.get(
            url,
            timeout=timeout,
            allow_redirects=True,
            headers={**headers, "Range": "bytes=0-0"},
            stream=True,
        ) as r:
            if r.status_code == 206:
                total = r.headers.get("Content-Range", "").rpartition("/")[2]
                return True, int(total) if total.isdigit() else None, "HTTP 206 (ranged GET)"
            if r.status_code == 200:
                length = r.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
                return True, size, "HTTP 200 (GET)"
            return False, None, f"HTTP {r.status_code}"
    except requests.RequestException as exc:
        from fwbuild.fetch import _reason

        return False, None, _reason(exc)


def _probe(row: Row, timeout: float) -> Row:
    scheme = urllib.parse.urlsplit(row.url).scheme.lower()
    size: int | None = None
    if scheme.startswith("git+"):
        from fwbuild.gitsource import check_remote

        alive, detail = check_remote(row.url, timeout=timeout)
    elif scheme == "file":
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(row.url).path))
        alive = path.is_file()
        size = path.stat().st_size if alive else None
        detail = "file exists" if alive else "no such file"
    else:
        alive, size, detail = _probe_http(row.url, timeout)
    row.detail = " ".join(detail.split())[:300]
    if not alive:
        row.state = "dead"
    elif not row.pinned:
        row.state = "unpinned"
    elif size is not None and row.expected_size is not None:
        row.state = "ok" if size == row.expected_size else "size"
        if size != row.expected_size:
            row.detail += f"; {size} bytes, the pinned copy has {row.expected_size}"
    else:
        row.state = "alive"
    return row


def check(project: Project, *, timeout: float | None = None) -> tuple[list[Row], list[str]]:
    """Ask every URL; (rows, declared sources with no live mirror left, as messages)."""
    if timeout is None:
        timeout = float(os.environ.get("FWBUILD_CHECK_TIMEOUT", "") or DEFAULT_TIMEOUT)
    rows, overridden = plan(project)
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        rows = list(pool.map(lambda r: _probe(r, timeout), rows))
    problems: list[str] = []
    declared: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        declared.setdefault((row.package, row.declared), []).append(row)
    for (package, name), group in sorted(declared.items()):
        if (package, name) in overridden or any(r.usable for r in group):
            continue
        states = ", ".join(sorted({r.state for r in group}))
        problems.append(
            f"{package}: {name} has no live mirror left ({len(group)} URL(s): {states}); "
            "find a new mirror or a fallback with its own digest before a build needs it"
        )
    return rows, problems


def table(rows: list[Row]) -> str:
    head = ("file", "mirror", "state", "detail")
    lines = [(r.filename, r.url, r.state, r.detail) for r in rows]
    widths = [min(60, max(len(h), *(len(x[i]) for x in lines))) for i, h in enumerate(head[:3])]
    out = []
    for cells in [head, *lines]:
        out.append(
            "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3]
        )
    return "\n".join(out)


def run_source_check(project: Project) -> Any:
    from fwbuild.actions import guarded
    from fwbuild.errors import BuildError

    def go() -> None:
        rows, problems = check(project)
        print(table(rows))
        counts = {s: sum(r.state == s for r in rows) for s in ("ok", "alive", "size", "dead")}
        print(
            f"source-check: {len(rows)} URL(s): {counts['ok']} ok, {counts['alive']} alive, "
            f"{counts['size']} different size, {counts['dead']} dead"
        )
        if problems:
            raise BuildError("\n".join(problems))

    return guarded(project, go)


def source_check_tasks(project: Project) -> dict[str, Any]:
    """The task creator for tasks.make_tasks."""

    def task_source_check() -> dict[str, Any]:
        """ask every mirror of every source without downloading; fail if one has none left"""
        return {
            "basename": "source-check",
            "actions": [(run_source_check, [project])],
            "uptodate": [False],
            "verbosity": 2,
        }

    return {"task_source_check": task_source_check}
