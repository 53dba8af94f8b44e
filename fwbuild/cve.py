"""``doit cve-check``: the known vulnerabilities of the board's packages, what we did about them.

As Yocto's ``cve-check`` and Buildroot's ``pkg-stats``: every package of the board whose recipe
names its product in CPE 2.3 (``cpe_products``) is looked up in a vulnerability feed, by CPE
(part, vendor, product) and version (an exact version, or NVD's ``versionStartIncluding`` /
``versionStartExcluding`` / ``versionEndIncluding`` / ``versionEndExcluding`` range). Each CVE
found then gets a status:

* **patched**: one of the package's patches says so in its header, Yocto style
  (``CVE: CVE-2020-8597``, several ids on the line or several lines allowed);
* **not applicable**: the recipe declares it, with a reason, in ``cve_status``
  (``{"CVE-2015-4047": "not-affected: gssapi is not built (--disable-gssapi)"}``; the kinds are
  Yocto's CVE_STATUS ones, see :data:`STATUS_KINDS`);
* **unpatched**: neither.

The feed is NVD's CVE API 2.0 JSON (``{"vulnerabilities": [{"cve": {...}}, ...]}``, plain or
gzip), from the board's ``[cve] feed_url`` or ``FWBUILD_CVE_FEED`` (one or several: NVD publishes
a file per year; a CVE in two of them counts once, the later one's): an ``http(s)`` URL is
downloaded into the download cache as ``cve-feed-<YYYY-MM-DD>-<name>`` (once a day) and used from
there when offline or when the server is unreachable; a local path is read where it is. A feed
is never pinned (it changes daily): the report names the file and its date.

The report goes to ``<build>/cve/<board>/cve-report.{json,txt}`` and, when the output directory
exists, a copy to ``<output>/`` beside the firmware it describes (the rootfs task replaces the
output directory whole, so the copy there always belongs to the image beside it; see
fwbuild.graphs for the same rule). With ``[cve] fail_on = "critical"`` (or high, medium, low)
an unpatched CVE at or above that severity fails the task, after the report is written.

What it does not do: NVD configurations that need a second condition (``AND`` with a platform
CPE) are matched on their vulnerable CPE alone, as Yocto does; CVEs without a CVSS score are
listed with severity "unknown" and never fail the check.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwbuild.errors import BuildError, ConfigError
from fwbuild.fsutil import atomic_write

if TYPE_CHECKING:
    from fwbuild.project import Project
    from fwbuild.recipe import Package

FEED_ENV = "FWBUILD_CVE_FEED"
FEED_PREFIX = "cve-feed-"
REPORT_JSON = "cve-report.json"
REPORT_TEXT = "cve-report.txt"
SEVERITIES = ("low", "medium", "high", "critical")
# Yocto's CVE_STATUS kinds that say "this CVE does not need a fix here".
STATUS_KINDS = (
    "not-affected",  # the vulnerable code is not built or not reachable in this configuration
    "cpe-incorrect",  # the record names this product but is about another one
    "fixed-version",  # the version we use is not affected (the record's range is wrong)
    "backported-patch",  # fixed by a change we carry that has no CVE tag (say which)
    "disputed",  # the upstream project disputes the CVE
    "ignored",  # accepted risk: the reason says why
)
_CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
_CVE_IN_TEXT = re.compile(r"CVE-\d{4}-\d{4,}")
_CVE_TAG = re.compile(r"^CVE:\s*(.*)$", re.IGNORECASE)
_PRERELEASE = ("alpha", "beta", "pre", "rc", "dev")
_FEED_TIMEOUT = (30.0, 120.0)  # connect, read (seconds)


# --- versions ----------------------------------------------------------------------------------
def _tokens(version: str) -> list[int | str]:
    return [int(t) if t.isdigit() else t.lower() for t in re.findall(r"\d+|[A-Za-z]+", version)]


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1. Numbers compare as numbers (2.6.9 < 2.6.11), letters as strings; a letter
    suffix after a number is a later release (OpenSSL's 1.0.1f > 1.0.1) unless it is a
    pre-release word (2.4.9rc1 < 2.4.9, 3.0.0-beta1 < 3.0.0); missing trailing zeros are equal
    (1.35 == 1.35.0)."""
    ta, tb = _tokens(a), _tokens(b)
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == y:
            continue
        if x is None or y is None:
            rest = y if x is None else x
            sign = 1 if x is None else -1  # the sign when the *shorter* one is `a`
            if isinstance(rest, int):
                if rest == 0 and all(t == 0 for t in (tb if x is None else ta)[i:]):
                    return 0
                return -sign
            return sign if rest in _PRERELEASE or str(rest).startswith(_PRERELEASE) else -sign
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, int):  # 2.4.9 vs 2.4.rc: a number after a dot is later than letters
            return 1
        if isinstance(y, int):
            return -1
        xp, yp = str(x).startswith(_PRERELEASE), str(y).startswith(_PRERELEASE)
        if xp != yp:
            return -1 if xp else 1
        return -1 if str(x) < str(y) else 1
    return 0


# --- CPE 2.3 -----------------------------------------------------------------------------------
def cpe_escape(value: str) -> str:
    """A value for a CPE 2.3 formatted string: characters other than letters, digits, ``_``,
    ``-`` and ``.`` get a backslash (``0.8.2+git`` -> ``0.8.2\\+git``)."""
    return "".join(c if c.isalnum() or c in "_-." else f"\\{c}" for c in value)


def _split_cpe(text: str) -> list[str]:
    parts, current, escaped = [], "", False
    for c in text:
        if escaped:
            current += c
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ":":
            parts.append(current)
            current = ""
        else:
            current += c
    parts.append(current)
    return parts


@dataclass(frozen=True)
class Cpe:
    part: str
    vendor: str
    product: str
    version: str = "*"
    update: str = "*"

    @classmethod
    def parse(cls, text: str) -> Cpe | None:
        fields = _split_cpe(text)
        if len(fields) < 6 or fields[:2] != ["cpe", "2.3"]:
            return None
        return cls(*fields[2:7])

    def formatted(self) -> str:
        head = [self.part, self.vendor, self.product, self.version, self.update]
        return (
            "cpe:2.3:" + ":".join(cpe_escape(v) if v not in "*-" else v for v in head) + (":*" * 6)
        )


def _product(entry: str, recipe: str) -> tuple[str, str, str]:
    fields = entry.split(":")
    if len(fields) == 2:
        fields = ["a", *fields]
    if len(fields) != 3 or fields[0] not in ("a", "o", "h") or not all(fields):
        raise ConfigError(
            f"{recipe}: cpe_products entry {entry!r} is not 'vendor:product' (or "
            "'o:vendor:product' for an operating system) as NVD spells them, e.g. "
            "'busybox:busybox' or 'o:linux:linux_kernel'"
        )
    return fields[0], fields[1].lower(), fields[2].lower()


def package_cpes(pkg: Package) -> list[Cpe]:
    """The package's CPEs (its version filled in), the recipe's primary product first."""
    return [
        Cpe(part, vendor, product, pkg.version)
        for part, vendor, product in (
            _product(e, str(pkg.recipe_file)) for e in getattr(pkg, "cpe_products", ())
        )
    ]


# --- what the recipe and our patches say -------------------------------------------------------
def patch_cves(path: Path) -> set[str]:
    """The CVE ids a patch's header declares (``CVE: CVE-…``; the header ends at the diff)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    found: set[str] = set()
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith(("--- ", "diff ", "Index: ", "+++ ")):
            break
        if m := _CVE_TAG.match(line.strip()):
            found.update(_CVE_IN_TEXT.findall(m[1]))
    return found


def declared_status(pkg: Package) -> dict[str, tuple[str, str]]:
    """``cve_status`` checked: CVE id -> (kind, reason)."""
    out: dict[str, tuple[str, str]] = {}
    for cve, text in dict(getattr(pkg, "cve_status", {})).items():
        kind, _, reason = str(text).partition(":")
        kind, reason = kind.strip(), reason.strip()
        if not _CVE_ID.match(str(cve)):
            raise ConfigError(
                f"{pkg.recipe_file}: cve_status key {cve!r} is not a CVE id (CVE-YYYY-NNNN)",
                package=pkg.name,
            )
        if kind not in STATUS_KINDS or not reason:
            raise ConfigError(
                f"{pkg.recipe_file}: cve_status[{cve!r}] = {text!r} must be '<kind>: <reason>' "
                f"with a kind among {', '.join(STATUS_KINDS)} and the reason written out, e.g. "
                "'not-affected: gssapi is not built (--disable-gssapi)'",
                package=pkg.name,
            )
        out[str(cve)] = (kind, reason)
    return out


# --- the feed ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpeMatch:
    cpe: Cpe
    vulnerable: bool = True
    start_including: str | None = None
    start_excluding: str | None = None
    end_including: str | None = None
    end_excluding: str | None = None

    def matches(self, cpe: Cpe) -> bool:
        c = self.cpe
        if not self.vulnerable or (c.part, c.vendor, c.product) != (
            cpe.part,
            cpe.vendor,
            cpe.product,
        ):
            return False
        if c.update not in ("*", "-", ""):
            return False  # a pre-release (rc1, …) of the version: not what we build
        version = cpe.version
        if c.version not in ("*", ""):
            return c.version != "-" and compare_versions(version, c.version) == 0
        ranges = (self.start_including, self.start_excluding, self.end_including)
        if not any(ranges) and not self.end_excluding:
            return True  # every version
        if self.start_including and compare_versions(version, self.start_including) < 0:
            return False
        if self.start_excluding and compare_versions(version, self.start_excluding) <= 0:
            return False
        if self.end_including and compare_versions(version, self.end_including) > 0:
            return False
        return not (self.end_excluding and compare_versions(version, self.end_excluding) >= 0)


@dataclass(frozen=True)
class Vuln:
    id: str
    severity: str  # low … critical, or "unknown"
    score: float | None
    summary: str
    matches: tuple[CpeMatch, ...] = field(repr=False, default=())

    def affects(self, cpe: Cpe) -> bool:
        return any(m.matches(cpe) for m in self.matches)


def _severity(metrics: Mapping[str, Any]) -> tuple[str, float | None]:
    for key in ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2"):
        entries = [e for e in metrics.get(key) or [] if isinstance(e, dict)]
        entries.sort(key=lambda e: e.get("type") != "Primary")
        for entry in entries:
            data = entry.get("cvssData") or {}
            severity = data.get("baseSeverity") or entry.get("baseSeverity")
            score = data.get("baseScore")
            if isinstance(severity, str) and severity.lower() in SEVERITIES:
                return severity.lower(), float(score) if isinstance(score, int | float) else None
    return "unknown", None


def _cpe_matches(cve: Mapping[str, Any]) -> Iterable[CpeMatch]:
    for config in cve.get("configurations") or []:
        for node in config.get("nodes") or []:
            if node.get("negate"):
                continue
            for m in node.get("cpeMatch") or []:
                cpe = Cpe.parse(str(m.get("criteria", "")))
                if cpe is None:
                    continue
                yield CpeMatch(
                    cpe,
                    bool(m.get("vulnerable", True)),
                    m.get("versionStartIncluding"),
                    m.get("versionStartExcluding"),
                    m.get("versionEndIncluding"),
                    m.get("versionEndExcluding"),
                )


def parse_feed(data: bytes, where: str) -> list[Vuln]:
    """An NVD CVE API 2.0 document (plain or gzip) as a list of vulnerabilities."""
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        doc = json.loads(data)
    except (OSError, EOFError, ValueError) as exc:
        raise BuildError(
            f"cve-check: the vulnerability feed {where} is not JSON ({exc}); it must be an NVD "
            "CVE API 2.0 document ({'vulnerabilities': [{'cve': ...}]}), plain or gzip"
        ) from None
    items = doc.get("vulnerabilities") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise BuildError(
            f"cve-check: the vulnerability feed {where} has no 'vulnerabilities' list; it must "
            "be an NVD CVE API 2.0 document ({'vulnerabilities': [{'cve': ...}]})"
        )
    vulns = []
    for item in items:
        cve = item.get("cve") if isinstance(item, dict) else None
        if not isinstance(cve, dict) or not _CVE_ID.match(str(cve.get("id", ""))):
            continue
        if cve.get("vulnStatus") == "Rejected":
            continue
        severity, score = _severity(cve.get("metrics") or {})
        summary = next(
            (d.get("value", "") for d in cve.get("descriptions") or [] if d.get("lang") == "en"),
            "",
        )
        vulns.append(
            Vuln(
                cve["id"], severity, score, " ".join(str(summary).split()), tuple(_cpe_matches(cve))
            )
        )
    return vulns


def feed_setting(project: Project) -> list[str]:
    """The feeds to read: ``FWBUILD_CVE_FEED`` (several separated by spaces) or ``[cve]
    feed_url`` (a string or a list: NVD publishes one file per year)."""
    env = os.environ.get(FEED_ENV, "").split()
    if env:
        return env
    value = (project.board.data.get("cve") or {}).get("feed_url") or []
    return [value] if isinstance(value, str) else list(value)


def _cache_name(url: str) -> str:
    name = Path(urllib.parse.urlsplit(url).path).name or "feed.json"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def _today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def cached_feeds(downloads: Path, url: str) -> list[Path]:
    """The feed's copies in the download cache, newest date first."""
    suffix = "-" + _cache_name(url)
    pattern = re.compile(r"^" + re.escape(FEED_PREFIX) + r"(\d{4}-\d{2}-\d{2})" + re.escape(suffix))
    found = [p for p in downloads.glob(f"{FEED_PREFIX}*{suffix}") if pattern.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _download(url: str, dest: Path) -> None:
    import requests

    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with requests.get(url, timeout=_FEED_TIMEOUT, stream=True) as resp:
            if resp.status_code != 200:
                raise BuildError(f"cve-check: {url} answered HTTP {resp.status_code}")
            with tmp.open("wb") as fh:
                for block in resp.iter_content(1 << 20):
                    fh.write(block)
        parse_feed(tmp.read_bytes(), url)  # a broken download never replaces a good copy
        os.replace(tmp, dest)
    except requests.RequestException as exc:
        raise BuildError(f"cve-check: downloading {url} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def obtain_feed(
    project: Project, where: str, log: Callable[[str], None] = print
) -> tuple[Path, str]:
    """The feed file to read and where it came from (a local file, today's or a cached copy)."""
    board = project.board
    scheme = urllib.parse.urlsplit(where).scheme.lower()
    if scheme not in ("http", "https"):
        path = (
            Path(urllib.parse.unquote(urllib.parse.urlsplit(where).path))
            if scheme == "file"
            else (board.paths.project / where)
        )
        if not path.is_file():
            raise ConfigError(
                f"cve-check: the vulnerability feed {where} ([cve] feed_url or {FEED_ENV}) is "
                "not a file; give an existing NVD JSON file or an http(s) URL"
            )
        return path, f"local file {path}"
    downloads = board.paths.downloads
    today = downloads / f"{FEED_PREFIX}{_today()}-{_cache_name(where)}"
    if today.is_file():
        return today, f"{where}, downloaded today ({today.name})"
    problem = "offline (FWBUILD_OFFLINE / [board] offline)"
    if not board.offline:
        try:
            downloads.mkdir(parents=True, exist_ok=True)
            _download(where, today)
            return today, f"{where}, downloaded now ({today.name})"
        except (BuildError, OSError) as exc:
            problem = str(exc)
    cached = cached_feeds(downloads, where)
    if cached:
        log(f"cve-check: using the cached feed {cached[0].name}: {problem}")
        return cached[0], f"{where}, cached copy {cached[0].name} ({problem})"
    raise BuildError(
        f"cve-check: no copy of the vulnerability feed {where} in {downloads} and it cannot be "
        f"downloaded now ({problem}); run once with the network, or point {FEED_ENV} at a local "
        "NVD JSON file"
    )


# --- the check ---------------------------------------------------------------------------------
@dataclass
class Finding:
    package: str
    version: str
    cve: str
    severity: str
    score: float | None
    status: str  # unpatched, patched, not-applicable
    detail: str
    summary: str

    @property
    def status_text(self) -> str:
        if self.status == "patched":
            return f"patched by {self.detail}"
        if self.status == "not-applicable":
            return f"not applicable: {self.detail}"
        return "unpatched"


@dataclass
class Report:
    findings: list[Finding]
    checked: dict[str, list[str]]  # package -> its CPEs
    unchecked: list[str]  # packages without a CPE
    stale: list[str]  # declarations for CVEs the feed does not list for the package
    feed: str
    entries: int
    fail_on: str | None

    def failing(self) -> list[Finding]:
        if not self.fail_on:
            return []
        limit = SEVERITIES.index(self.fail_on)
        return [
            f
            for f in self.findings
            if f.status == "unpatched"
            and f.severity in SEVERITIES
            and SEVERITIES.index(f.severity) >= limit
        ]


def fail_on(project: Project) -> str | None:
    value = (project.board.data.get("cve") or {}).get("fail_on")
    return None if value in (None, "none") else str(value)


def check(project: Project, vulns: list[Vuln], feed: str) -> Report:
    findings: list[Finding] = []
    checked: dict[str, list[str]] = {}
    unchecked: list[str] = []
    stale: list[str] = []
    for name, pkg in sorted(project.packages.items()):
        cpes = package_cpes(pkg)
        status = declared_status(pkg)
        fixes: dict[str, list[str]] = {}
        for path in pkg.own_patches:
            for cve in sorted(patch_cves(path)):
                fixes.setdefault(cve, []).append(path.name)
        if not cpes:
            unchecked.append(name)
            continue
        checked[name] = [c.formatted() for c in cpes]
        seen: set[str] = set()
        for vuln in vulns:
            if not any(vuln.affects(c) for c in cpes):
                continue
            seen.add(vuln.id)
            if vuln.id in fixes:
                state, detail = "patched", ", ".join(fixes[vuln.id])
            elif vuln.id in status:
                kind, reason = status[vuln.id]
                state, detail = "not-applicable", f"{kind}: {reason}"
            else:
                state, detail = "unpatched", ""
            findings.append(
                Finding(
                    name,
                    pkg.version,
                    vuln.id,
                    vuln.severity,
                    vuln.score,
                    state,
                    detail,
                    vuln.summary,
                )
            )
        for cve in sorted((set(fixes) | set(status)) - seen):
            where = f"patch {', '.join(fixes[cve])}" if cve in fixes else "cve_status"
            stale.append(f"{name}: {cve} ({where}) is not listed for {pkg.label} in the feed")
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (f.package, -rank.get(f.severity, -1), f.cve))
    return Report(findings, checked, unchecked, stale, feed, len(vulns), fail_on(project))


def report_json(report: Report) -> dict[str, Any]:
    states = ("unpatched", "patched", "not-applicable")
    counts = {s: sum(f.status == s for f in report.findings) for s in states}
    return {
        "feed": report.feed,
        "feed_entries": report.entries,
        "fail_on": report.fail_on,
        "counts": counts,
        "packages": {name: {"cpes": cpes} for name, cpes in report.checked.items()},
        "not_checked": report.unchecked,
        "findings": [
            {
                "package": f.package,
                "version": f.version,
                "cve": f.cve,
                "severity": f.severity,
                "score": f.score,
                "status": f.status,
                "detail": f.detail,
                "summary": f.summary,
            }
            for f in report.findings
        ],
        "stale_declarations": report.stale,
    }


def report_table(report: Report) -> str:
    head = ("package", "CVE", "severity", "status")
    rows = [
        (
            f"{f.package} {f.version}",
            f.cve,
            f.severity + (f" {f.score:.1f}" if f.score is not None else ""),
            f.status_text,
        )
        for f in report.findings
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head[:3])]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3]
        for cells in [head, *rows]
    ]
    counts = report_json(report)["counts"]
    lines += [
        "",
        f"feed: {report.feed} ({report.entries} entries)",
        f"{len(report.findings)} CVE(s): {counts['unpatched']} unpatched, {counts['patched']} "
        f"patched, {counts['not-applicable']} not applicable",
    ]
    if report.unchecked:
        lines.append("not checked (no CPE in the recipe): " + ", ".join(report.unchecked))
    lines += [f"note: {s}" for s in report.stale]
    return "\n".join(lines) + "\n"


def report_dir(project: Project) -> Path:
    return project.board.paths.build / "cve" / project.board.name


def publish(project: Project, files: Mapping[str, str]) -> list[Path]:
    """Write each file whole into <build>/cve/<board>/, and a copy into an existing output."""
    targets = [report_dir(project)]
    if project.board.paths.output.is_dir():
        targets.append(project.board.paths.output)
    written = []
    for directory in targets:
        for name, text in files.items():
            atomic_write(directory / name, text)
            written.append(directory / name)
    return written


def run(project: Project, log: Callable[[str], None] = print) -> Report:
    feeds = feed_setting(project)
    if not feeds:
        raise ConfigError(
            f"{project.board.file}: cve-check needs a vulnerability feed: set [cve] feed_url (an "
            f"NVD CVE API 2.0 JSON file, http(s) URL or local path, or a list of them) or "
            f"{FEED_ENV}"
        )
    vulns: dict[str, Vuln] = {}
    sources = []
    for where in feeds:  # every feed is had (or refused) before anything is reported
        path, source = obtain_feed(project, where, log)
        vulns.update((v.id, v) for v in parse_feed(path.read_bytes(), str(path)))
        sources.append(source)
    report = check(project, list(vulns.values()), "; ".join(sources))
    text = report_table(report)
    written = publish(
        project,
        {REPORT_JSON: json.dumps(report_json(report), indent=2) + "\n", REPORT_TEXT: text},
    )
    log(text.rstrip("\n"))
    log("cve-check: wrote " + ", ".join(str(p) for p in written))
    failing = report.failing()
    if failing:
        listed = "; ".join(
            f"{f.package} {f.version} {f.cve} ({f.severity}"
            + (f" {f.score:.1f}" if f.score is not None else "")
            + ")"
            for f in failing
        )
        raise BuildError(
            f"cve-check: {len(failing)} unpatched CVE(s) at or above {report.fail_on!r} "
            f"([cve] fail_on in {project.board.file}): {listed}. Fix each with a patch under "
            "patches/<package>/<version>/ whose header says `CVE: <id>`, or declare it in the "
            "recipe's cve_status with the reason it does not apply; the report is in "
            f"{report_dir(project)}"
        )
    return report


def run_cve_check(project: Project) -> Any:
    from fwbuild.actions import guarded

    return guarded(project, lambda: run(project))


def cve_tasks(project: Project) -> dict[str, Callable[[], Any]]:
    """The ``cve-check`` task, for ``fwbuild.tasks.make_tasks``."""
    for pkg in project.packages.values():  # a bad declaration stops `doit list` already
        package_cpes(pkg)
        declared_status(pkg)

    def task_cve_check() -> dict[str, Any]:
        return {
            "basename": "cve-check",
            # (no "report" in a doc: doit list must not suggest a task of that name)
            "doc": "match the packages' CPEs and versions against a CVE feed ([cve] feed_url); "
            "fail on [cve] fail_on",
            "actions": [(run_cve_check, [project])],
            "uptodate": [False],
            "verbosity": 2,
        }

    return {"task_cve_check": task_cve_check}
