"""``doit cve-check`` (fwbuild.cve), the CPEs in recipes and in the SBOM.

The generated project's two packages get CPEs, a ``CVE:`` tag in our own patch and a
``cve_status`` declaration; a feed in NVD's CVE API 2.0 format, written here, is served by the
real local HTTP server. No build is needed: cve-check reads the recipes and the patches only.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

from fwbuild.cve import (
    Cpe,
    CpeMatch,
    compare_versions,
    cpe_escape,
    parse_feed,
    patch_cves,
)
from fwbuild.project import Project
from fwbuild.sbom import sbom_document

HELLO_CPE = "cpe:2.3:a:example:hello:1.0:*:*:*:*:*:*:*"
GREET_CPE = "cpe:2.3:a:greetsoft:libgreet:1.0:*:*:*:*:*:*:*"


def nvd_item(
    cve: str, criteria: str, severity: str | None, score: float | None = None, **ranges: str
) -> dict[str, Any]:
    """One entry as NVD's CVE API 2.0 writes it (the keys cve-check reads, and a few more)."""
    metrics: dict[str, Any] = {}
    if severity:
        metrics["cvssMetricV31"] = [
            {
                "source": "nvd@nist.gov",
                "type": "Primary",
                "cvssData": {"version": "3.1", "baseScore": score, "baseSeverity": severity},
            }
        ]
    match = {"vulnerable": True, "criteria": criteria, "matchCriteriaId": "0", **ranges}
    return {
        "cve": {
            "id": cve,
            "published": "2020-01-01T00:00:00.000",
            "vulnStatus": "Analyzed",
            "descriptions": [{"lang": "en", "value": f"{cve}: a test vulnerability"}],
            "metrics": metrics,
            "configurations": [
                {"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [match]}]}
            ],
        }
    }


def feed(*items: dict[str, Any]) -> bytes:
    doc = {"format": "NVD_CVE", "version": "2.0", "totalResults": len(items)}
    return json.dumps({**doc, "vulnerabilities": list(items)}).encode()


ANY_HELLO = "cpe:2.3:a:example:hello:*:*:*:*:*:*:*:*"
ANY_GREET = "cpe:2.3:a:greetsoft:libgreet:*:*:*:*:*:*:*:*"
BASE_FEED = [
    # in range 0.9 <= v < 1.0.1, critical, fixed by our patch's CVE: tag
    nvd_item(
        "CVE-2099-0001",
        ANY_HELLO,
        "CRITICAL",
        9.8,
        versionStartIncluding="0.9",
        versionEndExcluding="1.0.1",
    ),
    # this exact version, high, declared not applicable in the recipe
    nvd_item("CVE-2099-0002", HELLO_CPE, "HIGH", 7.5),
    # fixed in 1.0 (v < 1.0): not ours
    nvd_item("CVE-2099-0003", ANY_HELLO, "CRITICAL", 9.1, versionEndExcluding="1.0"),
    # the other name the recipe gives (an alias), medium, nothing done: unpatched
    nvd_item("CVE-2099-0004", "cpe:2.3:a:greet_project:greet:1.0:*:*:*:*:*:*:*", "MEDIUM", 5.3),
    # another product
    nvd_item("CVE-2099-0005", "cpe:2.3:a:other:hello:1.0:*:*:*:*:*:*:*", "CRITICAL", 10.0),
    # only 1.0.1 and later
    nvd_item("CVE-2099-0007", ANY_GREET, "HIGH", 8.0, versionStartExcluding="1.0"),
]
INJECTED = nvd_item(
    "CVE-2099-0006",
    ANY_GREET,
    "CRITICAL",
    9.9,
    versionStartIncluding="1.0",
    versionEndIncluding="1.0",
)

CVE_PATCH = """\
Our own fix for a (made-up) overflow, with the tag cve-check reads.

CVE: CVE-2099-0001

--- a/hello.c
+++ b/hello.c
@@ -10,3 +10,3 @@
     greet("SISO");
-    printf("hello: plain\\n");
+    printf("hello: fixed\\n");
     return 0;
"""


def cve_project(root: Path, dist: Dist, url: str, feed_url: str) -> Path:
    project = make_project(root, dist, url)
    hello = project / "recipes" / "hello.py"
    hello.write_text(
        hello.read_text().replace(
            '    license = "MIT"\n',
            '    license = "MIT"\n'
            '    cpe_products = ("example:hello",)\n'
            '    cve_status = {"CVE-2099-0002": "not-affected: the vulnerable option is off"}\n',
        )
    )
    greet = project / "recipes" / "libgreet.py"
    greet.write_text(
        greet.read_text().replace(
            '    license = "MIT"\n',
            '    license = "MIT"\n'
            '    cpe_products = ("greetsoft:libgreet", "greet_project:greet")\n',
        )
    )
    own = project / "patches" / "hello" / "1.0"
    (own / "0001-patched-greeting.patch").unlink()
    (own / "0001-fix-overflow.patch").write_text(CVE_PATCH)
    board = project / "configs" / "board.toml"
    board.write_text(
        board.read_text() + f'\n[cve]\nfeed_url = "{feed_url}"\nfail_on = "critical"\n'
    )
    return project


@pytest.fixture
def served(tmp_path: Path, mirror_root: Path) -> Iterator[tuple[FaultServer, Path]]:
    root = tmp_path / "www"
    shutil.copytree(mirror_root, root)
    (root / "nvd").mkdir()
    (root / "nvd" / "nvdcve-2.0.json").write_bytes(feed(*BASE_FEED))
    with FaultServer(root) as srv:
        yield srv, root


@pytest.fixture
def project(tmp_path: Path, dist: Dist, served: tuple[FaultServer, Path]) -> Path:
    srv, _ = served
    return cve_project(tmp_path / "p", dist, srv.url, srv.url_for("/nvd/nvdcve-2.0.json"))


def report(project: Path) -> dict[str, Any]:
    return json.loads((project / "build" / "cve" / "testboard" / "cve-report.json").read_text())


def statuses(rep: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {f["cve"]: (f["package"], f["status"], f["detail"]) for f in rep["findings"]}


# --- the engine --------------------------------------------------------------------------------
def test_cve_check_matches_versions_patches_and_declarations(
    project: Path, served: tuple[FaultServer, Path]
) -> None:
    srv, _ = served
    run = run_doit(project, "cve-check")
    assert run.returncode == 0, run.output
    rep = report(project)
    assert statuses(rep) == {
        "CVE-2099-0001": ("hello", "patched", "0001-fix-overflow.patch"),
        "CVE-2099-0002": ("hello", "not-applicable", "not-affected: the vulnerable option is off"),
        "CVE-2099-0004": ("libgreet", "unpatched", ""),
    }
    assert rep["counts"] == {"unpatched": 1, "patched": 1, "not-applicable": 1}
    assert rep["packages"]["hello"]["cpes"] == [HELLO_CPE]
    assert rep["packages"]["libgreet"]["cpes"] == [
        GREET_CPE,
        "cpe:2.3:a:greet_project:greet:1.0:*:*:*:*:*:*:*",
    ]
    severity = {f["cve"]: (f["severity"], f["score"]) for f in rep["findings"]}
    assert severity["CVE-2099-0001"] == ("critical", 9.8)
    # the readable table says the same, and the downloaded feed is cached with today's date
    text = (project / "build" / "cve" / "testboard" / "cve-report.txt").read_text()
    assert "CVE-2099-0001  critical 9.8  patched by 0001-fix-overflow.patch" in text
    assert "not applicable: not-affected: the vulnerable option is off" in text
    assert "CVE-2099-0004  medium 5.3    unpatched" in text
    assert "CVE-2099-0001" in run.output and "1 unpatched, 1 patched, 1 not applicable" in text
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    cached = project / "dl" / f"cve-feed-{today}-nvdcve-2.0.json"
    assert cached.read_bytes() == feed(*BASE_FEED)
    assert srv.count("GET", "/nvd/nvdcve-2.0.json") == 1
    # the output directory does not exist yet: the report did not create it
    assert not (project / "output").exists()


def test_cached_feed_is_used_offline_and_when_the_server_is_gone(
    project: Path, served: tuple[FaultServer, Path]
) -> None:
    srv, _ = served
    assert run_doit(project, "cve-check").returncode == 0
    # an older copy: today's would be reused anyway, so make it yesterday's
    (cached,) = (project / "dl").glob("cve-feed-*")
    old = cached.with_name("cve-feed-2000-01-01-nvdcve-2.0.json")
    cached.rename(old)
    before = srv.count("GET", "/nvd/nvdcve-2.0.json")
    run = run_doit(project, "cve-check", env=doit_env(FWBUILD_OFFLINE="1"))
    assert run.returncode == 0, run.output
    assert srv.count("GET", "/nvd/nvdcve-2.0.json") == before  # no network
    assert "using the cached feed cve-feed-2000-01-01-nvdcve-2.0.json" in run.output
    assert "cve-feed-2000-01-01" in report(project)["feed"]
    assert len(report(project)["findings"]) == 3
    # the server is gone: the same copy, said so
    srv.stop()
    run = run_doit(project, "cve-check")
    assert run.returncode == 0, run.output
    assert "using the cached feed cve-feed-2000-01-01-nvdcve-2.0.json" in run.output
    # no copy at all and no server: a clear error, not a traceback
    old.unlink()
    run = run_doit(project, "cve-check")
    assert run.returncode != 0
    assert "no copy of the vulnerability feed" in run.output
    assert "Traceback" not in run.output


def test_unpatched_critical_cve_fails_and_still_writes_the_report(
    project: Path, tmp_path: Path
) -> None:
    local = tmp_path / "injected.json"
    local.write_bytes(feed(*BASE_FEED, INJECTED))
    run = run_doit(project, "cve-check", env=doit_env(FWBUILD_CVE_FEED=str(local)))
    assert run.returncode != 0
    assert "1 unpatched CVE(s) at or above 'critical'" in run.output
    assert "libgreet 1.0 CVE-2099-0006 (critical 9.9)" in run.output
    assert "Traceback" not in run.output
    rep = report(project)
    assert statuses(rep)["CVE-2099-0006"] == ("libgreet", "unpatched", "")
    assert rep["feed"] == f"local file {local}"
    # declared not applicable, it passes
    greet = project / "recipes" / "libgreet.py"
    greet.write_text(
        greet.read_text().replace(
            "    cpe_products",
            '    cve_status = {"CVE-2099-0006": "ignored: only reachable by the admin"}\n'
            "    cpe_products",
        )
    )
    run = run_doit(project, "cve-check", env=doit_env(FWBUILD_CVE_FEED=str(local)))
    assert run.returncode == 0, run.output
    assert statuses(report(project))["CVE-2099-0006"][1] == "not-applicable"


def test_several_feeds_one_per_year(project: Path, served: tuple[FaultServer, Path]) -> None:
    """NVD publishes a file per year: feed_url may list several (each cached on its own), and a
    CVE in two of them counts once."""
    srv, root = served
    (root / "nvd" / "nvdcve-2.0-2098.json").write_bytes(feed(*BASE_FEED[:2]))
    (root / "nvd" / "nvdcve-2.0-2099.json").write_bytes(feed(*BASE_FEED[1:], INJECTED))
    board = project / "configs" / "board.toml"
    urls = [srv.url_for(f"/nvd/nvdcve-2.0-{y}.json") for y in (2098, 2099)]
    board.write_text(
        board.read_text().replace(
            f'feed_url = "{srv.url_for("/nvd/nvdcve-2.0.json")}"', f"feed_url = {json.dumps(urls)}"
        )
    )
    run = run_doit(project, "cve-check")
    assert run.returncode != 0 and "CVE-2099-0006" in run.output  # from the second file
    rep = report(project)
    assert sorted(statuses(rep)) == ["CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0004",
                                     "CVE-2099-0006"]  # fmt: skip
    assert sorted(
        p.name[len("cve-feed-2000-01-01-") :] for p in (project / "dl").glob("cve-*")
    ) == [
        "nvdcve-2.0-2098.json",
        "nvdcve-2.0-2099.json",
    ]
    # the environment takes several, separated by spaces
    local = project / "local.json"
    local.write_bytes(feed(BASE_FEED[0]))
    run = run_doit(project, "cve-check", env=doit_env(FWBUILD_CVE_FEED=f"{local} {local}"))
    assert run.returncode == 0, run.output
    assert sorted(statuses(report(project))) == ["CVE-2099-0001"]


def test_report_copy_goes_into_an_existing_output(project: Path) -> None:
    (project / "output").mkdir()
    assert run_doit(project, "cve-check").returncode == 0
    assert json.loads((project / "output" / "cve-report.json").read_text()) == report(project)
    assert (project / "output" / "cve-report.txt").is_file()


@pytest.mark.parametrize(
    ("recipe_line", "expected"),
    [
        ('    cve_status = {"CVE-2099-0002": "fine"}\n', "must be '<kind>: <reason>'"),
        ('    cve_status = {"CVE-2099-0002": "not-affected:"}\n', "must be '<kind>: <reason>'"),
        ('    cve_status = {"2099-2": "ignored: x"}\n', "is not a CVE id"),
        ('    cpe_products = ("hello",)\n', "is not 'vendor:product'"),
    ],
)
def test_bad_declarations_are_named_errors(project: Path, recipe_line: str, expected: str) -> None:
    hello = project / "recipes" / "hello.py"
    text = hello.read_text()
    for line in text.splitlines(keepends=True):
        if line.startswith(recipe_line.split("=")[0]):
            text = text.replace(line, recipe_line)
    hello.write_text(text)
    run = run_doit(project, "cve-check")
    assert run.returncode != 0
    assert expected in run.output and "recipes/hello.py" in run.output
    assert "Traceback" not in run.output


def test_a_broken_download_keeps_the_cached_copy(
    project: Path, served: tuple[FaultServer, Path]
) -> None:
    _, root = served
    assert run_doit(project, "cve-check").returncode == 0
    (cached,) = (project / "dl").glob("cve-feed-*")
    good = cached.read_bytes()
    cached.rename(cached.with_name("cve-feed-2000-01-01-nvdcve-2.0.json"))
    (root / "nvd" / "nvdcve-2.0.json").write_text("<html>maintenance</html>")
    run = run_doit(project, "cve-check")
    assert run.returncode == 0, run.output
    assert "is not JSON" in run.output and "using the cached feed" in run.output
    assert [p.name for p in (project / "dl").glob("cve-feed-*")] == [
        "cve-feed-2000-01-01-nvdcve-2.0.json"
    ]
    assert (project / "dl" / "cve-feed-2000-01-01-nvdcve-2.0.json").read_bytes() == good
    assert not list((project / "dl").glob(".cve-feed-*"))


def test_board_cve_section_is_checked(project: Path) -> None:
    board = project / "configs" / "board.toml"
    board.write_text(board.read_text().replace('fail_on = "critical"', 'fail_on = "severe"'))
    run = run_doit(project, "cve-check")
    assert run.returncode != 0
    assert "fail_on" in run.output and "Traceback" not in run.output


# --- the pieces --------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("2.4.3", "2.4.3", 0),
        ("2.4.3", "2.4.9", -1),
        ("2.6.11", "2.6.9", 1),  # numbers, not strings
        ("2.6.11", "2.6.11.12", -1),
        ("1.35.0", "1.35", 0),
        ("1.35.0", "1.36.1", -1),
        ("0.8.2", "0.8.10", -1),
        ("0.69", "0.70", -1),
        ("3.0.20", "3.0.3", 1),
        ("3.5.4", "3.0.20", 1),
        ("1.0.1f", "1.0.1", 1),  # OpenSSL's letter releases come after
        ("1.0.1f", "1.0.1g", -1),
        ("2.4.9rc1", "2.4.9", -1),  # pre-releases come before
        ("3.0.0-beta1", "3.0.0", -1),
        ("3.0.0-alpha2", "3.0.0-beta1", -1),
    ],
)
def test_version_comparison(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.unit
def test_cpe_ranges() -> None:
    cpe = Cpe("a", "samba", "ppp", "2.4.3")
    pattern = Cpe.parse("cpe:2.3:a:samba:ppp:*:*:*:*:*:*:*:*")
    assert pattern is not None
    inside = CpeMatch(pattern, start_including="2.4.2", end_including="2.4.8")
    assert inside.matches(cpe)
    assert not CpeMatch(pattern, start_excluding="2.4.3").matches(cpe)
    assert CpeMatch(pattern, start_excluding="2.4.2").matches(cpe)
    assert not CpeMatch(pattern, end_excluding="2.4.3").matches(cpe)
    assert CpeMatch(pattern, end_including="2.4.3").matches(cpe)
    assert not CpeMatch(pattern, vulnerable=False).matches(cpe)
    exact = Cpe.parse("cpe:2.3:a:samba:ppp:2.4.3:*:*:*:*:*:*:*")
    assert exact is not None and CpeMatch(exact).matches(cpe)
    rc = Cpe.parse("cpe:2.3:a:samba:ppp:2.4.3:rc1:*:*:*:*:*:*")
    assert rc is not None and not CpeMatch(rc).matches(cpe)
    assert not CpeMatch(pattern).matches(Cpe("a", "samba", "samba", "2.4.3"))
    assert not CpeMatch(pattern).matches(Cpe("o", "samba", "ppp", "2.4.3"))
    kernel = Cpe.parse(r"cpe:2.3:o:linux:linux_kernel:2.6.11:*:*:*:*:*:*:*")
    assert kernel == Cpe("o", "linux", "linux_kernel", "2.6.11", "*")
    assert cpe_escape("0.8.2+2014") == r"0.8.2\+2014"
    escaped = Cpe.parse(r"cpe:2.3:a:x:y:0.8.2\+2014:*:*:*:*:*:*:*")
    assert escaped is not None and escaped.version == "0.8.2+2014"
    assert escaped.formatted() == r"cpe:2.3:a:x:y:0.8.2\+2014:*:*:*:*:*:*:*"


@pytest.mark.unit
def test_patch_tags_only_in_the_header(tmp_path: Path) -> None:
    patch = tmp_path / "p.patch"
    patch.write_text(
        "Fix two things.\n\nCVE: CVE-2020-8597\ncve: CVE-2019-0001 CVE-2019-0002\n\n"
        "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+CVE: CVE-2000-0001\n"
    )
    assert patch_cves(patch) == {"CVE-2020-8597", "CVE-2019-0001", "CVE-2019-0002"}
    import gzip

    (tmp_path / "p.patch.gz").write_bytes(gzip.compress(patch.read_bytes()))
    assert patch_cves(tmp_path / "p.patch.gz") == patch_cves(patch)


@pytest.mark.unit
def test_feed_parsing_skips_rejected_and_reads_cvss_v2() -> None:
    v2 = nvd_item("CVE-2005-0001", ANY_HELLO, None)
    v2["cve"]["metrics"] = {
        "cvssMetricV2": [{"baseSeverity": "HIGH", "cvssData": {"version": "2.0", "baseScore": 7.5}}]
    }
    rejected = nvd_item("CVE-2005-0002", ANY_HELLO, "HIGH", 7.0)
    rejected["cve"]["vulnStatus"] = "Rejected"
    none = nvd_item("CVE-2005-0003", ANY_HELLO, None)
    vulns = {v.id: v for v in parse_feed(feed(v2, rejected, none), "test")}
    assert set(vulns) == {"CVE-2005-0001", "CVE-2005-0003"}
    assert (vulns["CVE-2005-0001"].severity, vulns["CVE-2005-0001"].score) == ("high", 7.5)
    assert vulns["CVE-2005-0003"].severity == "unknown"


# --- the SBOM ----------------------------------------------------------------------------------
def spdx_schema() -> dict[str, Any]:
    text = (resources.files("lib4sbom") / "schemas" / "spdx" / "2.3-schema.json").read_text()
    return json.loads(text)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FWBUILD_") or name == "ROOTFS_DIR":
            monkeypatch.delenv(name)


@pytest.mark.unit
def test_sbom_carries_cpes_and_purls(
    project: Path, clean_env: None, tmp_path: Path, served: tuple[FaultServer, Path]
) -> None:
    doc = sbom_document(Project.load(project / "configs" / "board.toml", project))
    refs = {
        p["name"]: p["externalRefs"] for p in doc["packages"] if p["name"] in ("hello", "libgreet")
    }
    assert refs["hello"][0] == {
        "referenceCategory": "SECURITY",
        "referenceType": "cpe23Type",
        "referenceLocator": HELLO_CPE,
    }
    assert [r["referenceLocator"] for r in refs["libgreet"][:2]] == [
        GREET_CPE,
        "cpe:2.3:a:greet_project:greet:1.0:*:*:*:*:*:*:*",
    ]
    purl = refs["hello"][-1]
    assert purl["referenceType"] == "purl" and purl["referenceCategory"] == "PACKAGE-MANAGER"
    assert purl["referenceLocator"].startswith("pkg:generic/hello@1.0?download_url=http%3A%2F%2F")
    validator = jsonschema.Draft7Validator(spdx_schema())
    assert [e.message for e in validator.iter_errors(doc)] == []
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "sbom.spdx.json"
    # spdx-tools does not take a URL with a port (as in test_sbom.py)
    path.write_text(json.dumps(doc).replace(served[0].url, "https://mirror.example.org"))
    assert [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))] == []


def test_real_board_recipes_declare_cpes(clean_env: None) -> None:
    repo = Path(__file__).resolve().parents[1]
    board = Project.load(repo / "configs" / "siso.toml", repo)
    doc = sbom_document(board)
    cpes = {
        p["name"]: [
            r["referenceLocator"]
            for r in p.get("externalRefs", [])
            if r["referenceType"] == "cpe23Type"
        ]
        for p in doc["packages"]
    }
    assert cpes["ppp"][:2] == [
        "cpe:2.3:a:samba:ppp:2.4.3:*:*:*:*:*:*:*",
        "cpe:2.3:a:point-to-point_protocol_project:point-to-point_protocol:2.4.3:*:*:*:*:*:*:*",
    ]
    assert cpes["linux"] == ["cpe:2.3:o:linux:linux_kernel:2.6.11:*:*:*:*:*:*:*"]
    assert cpes["ipsec-tools"] == ["cpe:2.3:a:ipsec-tools:ipsec-tools:0.8.2:*:*:*:*:*:*:*"]
    assert cpes["busybox"] == ["cpe:2.3:a:busybox:busybox:1.35.0:*:*:*:*:*:*:*"]
    assert cpes["l2tpd"] == ["cpe:2.3:a:l2tpd:l2tpd:0.69:*:*:*:*:*:*:*"]
    assert cpes["openssl"][0].startswith("cpe:2.3:a:openssl:openssl:")


# --- an independent scanner reads the SBOM ---------------------------------------------------
MAKE_SCANNER_DB = """\
import json, sys
from cve_bin_tool.cvedb import CVEDB
from cve_bin_tool.data_sources.nvd_source import NVD_Source

items = json.load(open(sys.argv[1]))["vulnerabilities"]
db = CVEDB(sources=[], version_check=False)
db.data = [(NVD_Source(nvd_type="api2").format_data_api2(items), "NVD")]
db.init_database()
db.populate_db()
"""


@pytest.mark.unit
def test_cve_bin_tool_reads_the_sbom_offline(
    project: Path, clean_env: None, tmp_path: Path
) -> None:
    """cve-bin-tool (Intel's scanner, on PyPI) scans our SPDX SBOM with no network: its
    database is built by its own code from the same NVD 2.0 feed, under a private HOME.

    What it finds follows its own rules, which the expectations spell out: when a package has
    a purl, cve-bin-tool 3.4 takes only the version from it and matches the package *name*
    against every vendor's product of that name, ignoring the CPEs (so other:hello's
    CVE-2099-0005 is reported, and libgreet's alias greet_project:greet is not looked up);
    version ranges are applied as NVD states them. ``doit cve-check`` matches the recipes'
    CPEs instead."""
    import subprocess
    import sys

    pytest.importorskip("cve_bin_tool")
    home = tmp_path / "home"
    (home / ".cache" / "cve-bin-tool").mkdir(parents=True)
    feed_file = tmp_path / "feed.json"
    feed_file.write_bytes(feed(*BASE_FEED, INJECTED))
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text(json.dumps(sbom_document(Project.load(project / "configs" / "board.toml"))))
    env = {**doit_env(), "HOME": str(home), "COLUMNS": "300"}
    made = subprocess.run([sys.executable, "-c", MAKE_SCANNER_DB, str(feed_file)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "found.json"
    scan = subprocess.run(
        [sys.executable, "-m", "cve_bin_tool.cli", "--offline", "-u", "never",
         "--sbom", "spdx", "--sbom-file", str(sbom), "-f", "json", "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    log = scan.stdout + scan.stderr
    assert "The number of products to process from SBOM - 4" in log, log
    found = {(f["vendor"], f["product"], f["version"], f["cve_number"], f["severity"])
             for f in json.loads(out.read_text())}  # fmt: skip
    assert found == {
        ("example", "hello", "1.0", "CVE-2099-0001", "CRITICAL"),  # in 0.9 <= v < 1.0.1
        ("example", "hello", "1.0", "CVE-2099-0002", "HIGH"),  # exactly 1.0
        ("other", "hello", "1.0", "CVE-2099-0005", "CRITICAL"),  # same name, other vendor
        ("greetsoft", "libgreet", "1.0", "CVE-2099-0006", "CRITICAL"),  # 1.0 <= v <= 1.0
    }
    # not CVE-2099-0003 (v < 1.0) nor CVE-2099-0007 (v > 1.0): its version ranges agree
    assert scan.returncode != 0  # it exits non-zero when it finds CVEs


@pytest.mark.unit
def test_review_table_is_current(clean_env: None) -> None:
    """docs/cve.md's table is what cve-check gives for the board with the excerpt feed, and the
    board passes its own fail_on with it."""
    from fwbuild.cve import check, report_table

    repo = Path(__file__).resolve().parents[1]
    board = Project.load(repo / "configs" / "siso.toml", repo)
    excerpt = repo / "docs" / "cve" / "nvd-excerpt.json"
    report = check(board, parse_feed(excerpt.read_bytes(), str(excerpt)), "excerpt")
    table = [line for line in report_table(report).splitlines() if not line.startswith("feed:")]
    doc = (repo / "docs" / "cve.md").read_text()
    block = doc.split("<!-- cve-check table: begin -->\n```\n")[1].split("```\n<!--")[0]
    assert block.splitlines() == table
    assert report.fail_on == "critical" and report.failing() == []
