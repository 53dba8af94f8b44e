"""Downloads that cannot hang or pile up (issue 10), against the fault server on 127.0.0.1.

A mirror that trickles or stalls is abandoned within its deadline / minimum speed and the next
one is used; a runaway response stops at the size cap; a download killed with SIGKILL continues
from its partial file with ``Range``; ``dl/.rejected`` keeps one private copy per name; only
URLs the downloader can fetch get past the project loader. The limits are small here (set
through FetchSettings or the environment) so that each test takes a second or two.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer, mirrors_holding

from fwbuild import fetch as fetch_mod
from fwbuild.errors import ConfigError, DigestMismatch, DownloadError
from fwbuild.fetch import (
    SUPPORTED_SCHEMES,
    FetchSettings,
    RemoteFile,
    check_url,
    download_for_pin,
    fetch,
    parse_size,
)
from fwbuild.pins import Pins
from fwbuild.project import Project
from fwbuild.stages import fetch_settings

NAME = "payload-1.0.tar.gz"
SIZE = 1 << 20
PKG = "payload"
PRIMARY = f"/primary/{NAME}"
UPSTREAM = f"/upstream/{NAME}"
BACKUP = f"/backup/{NAME}"
PAYLOAD = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(SIZE // 32))
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "RETRY_DELAY", 0.0)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[FaultServer]:
    with mirrors_holding(tmp_path / "srv", NAME, PAYLOAD) as srv:
        yield srv


def _remote(srv: FaultServer) -> RemoteFile:
    return RemoteFile(NAME, (srv.url + UPSTREAM,), {"sha256": SHA256})


def _settings(dl_dir: Path, srv: FaultServer, **kw: object) -> FetchSettings:
    base = FetchSettings(
        dl_dir=dl_dir,
        primary_mirror=f"{srv.url}/primary",
        backup_mirrors=(f"{srv.url}/backup",),
        progress="plain",
        connect_timeout=2.0,
        read_timeout=5.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _gets(srv: FaultServer) -> list[tuple[str, str | None]]:
    return [(path, rng) for method, path, rng in srv.requests if method == "GET"]


def _timed_fetch(remote: RemoteFile, settings: FetchSettings) -> tuple[Path, float, str]:
    log = io.StringIO()
    start = time.monotonic()
    path = fetch(remote, settings, package=PKG, log=log)
    return path, time.monotonic() - start, log.getvalue()


# -- 1. deadline, minimum speed, stall: a hanging mirror is abandoned, the next one used ---------


@pytest.mark.unit
def test_trickling_mirror_is_abandoned_at_its_deadline(srv: FaultServer, tmp_path: Path) -> None:
    srv.fault(PRIMARY, "trickle", interval=0.5)  # one byte every half second: never "stalls"
    settings = _settings(tmp_path / "dl", srv, deadline=1.5, min_speed=0)
    path, took, log = _timed_fetch(_remote(srv), settings)
    assert path.read_bytes() == PAYLOAD
    assert took < 4.0, log
    assert [p for p, _ in _gets(srv)] == [PRIMARY, UPSTREAM]
    assert f"{srv.url}{PRIMARY}: deadline of 1.5 s" in log and "trying the next URL" in log


@pytest.mark.unit
def test_trickling_mirror_below_the_minimum_speed_is_too_slow(
    srv: FaultServer, tmp_path: Path
) -> None:
    srv.fault(PRIMARY, "trickle", interval=0.05, step=1)  # 20 bytes/s
    # The deadline only keeps a broken speed check from hanging the test for half an hour.
    settings = _settings(tmp_path / "dl", srv, min_speed=1000, speed_window=1.0, deadline=8.0)
    path, took, log = _timed_fetch(_remote(srv), settings)
    assert path.read_bytes() == PAYLOAD
    assert 1.0 <= took < 4.0, log
    assert f"{srv.url}{PRIMARY}: too slow:" in log and "below the minimum of 1000 bytes/s" in log
    assert srv.count("GET", PRIMARY) == 1  # too slow is not retried


@pytest.mark.unit
def test_every_mirror_too_slow_names_each_url(srv: FaultServer, tmp_path: Path) -> None:
    for path in (PRIMARY, UPSTREAM, BACKUP):
        srv.fault(path, "trickle", interval=0.2, step=1)
    settings = _settings(tmp_path / "dl", srv, deadline=0.8, min_speed=0)
    start = time.monotonic()
    with pytest.raises(DownloadError) as exc:
        fetch(_remote(srv), settings, package=PKG, log=io.StringIO())
    assert time.monotonic() - start < 5.0
    msg = str(exc.value)
    for path in (PRIMARY, UPSTREAM, BACKUP):
        assert f"{srv.url}{path}: deadline of 0.8 s" in msg
    assert "FWBUILD_DL_DEADLINE" in msg
    assert not (tmp_path / "dl" / NAME).exists()


@pytest.mark.unit
def test_retries_of_a_silent_mirror_count_toward_its_deadline(
    srv: FaultServer, tmp_path: Path
) -> None:
    srv.fault(PRIMARY, "slow", delay=30)  # accepts, never answers
    # Three attempts of 0.6 s would take 1.8 s; the deadline of 1 s covers them all.
    settings = _settings(tmp_path / "dl", srv, read_timeout=0.6, retries=2, deadline=1.0)
    path, took, log = _timed_fetch(_remote(srv), settings)
    assert path.read_bytes() == PAYLOAD
    assert took < 1.8, log
    assert srv.count("GET", PRIMARY) == 2
    assert "deadline of 1 s" in log


@pytest.mark.unit
def test_default_limits_bound_a_hanging_mirror_to_about_a_minute() -> None:
    s = FetchSettings(dl_dir=Path("dl"))
    attempts = s.retries + 1
    backoff = sum(fetch_mod.RETRY_DELAY * n for n in range(1, attempts))
    assert attempts * s.connect_timeout + backoff <= 60  # no connection at all
    assert attempts * s.read_timeout + backoff <= 60  # connected, then silent
    assert s.speed_window <= 60 and s.min_speed > 2  # a 2 byte/s trickle is too slow
    assert s.deadline > 60  # the backstop must not cut a real (large, slow) download


def test_deadline_through_the_environment_in_a_real_build(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, server.url)
    server.fault("/primary/hello-1.0.tar.gz", "trickle", interval=0.5)
    start = time.monotonic()
    run = run_doit(proj, "fetch:hello", env=doit_env(FWBUILD_DL_DEADLINE="1"))
    assert run.returncode == 0, run.output
    assert time.monotonic() - start < 30
    assert f"{server.url}/primary/hello-1.0.tar.gz: deadline of 1 s" in run.output
    assert (proj / "dl" / "hello-1.0.tar.gz").read_bytes() == dist.files["hello-1.0.tar.gz"]


# -- 2. a killed download continues from its partial file ---------------------------------------

CHILD = """
import json, sys
from pathlib import Path
from fwbuild.fetch import FetchSettings, RemoteFile, fetch
a = json.loads(sys.argv[1])
fetch(RemoteFile(a["name"], (a["url"],), {"sha256": a["sha256"]}),
      FetchSettings(dl_dir=Path(a["dl"]), progress="none"), package="payload")
"""


@pytest.mark.unit
def test_download_killed_mid_transfer_resumes_with_range(srv: FaultServer, tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    part = dl / ".partial" / f"{NAME}.part"
    srv.fault(UPSTREAM, "trickle", interval=0.05, step=16 << 10)  # 1 MiB in ~3 s
    args = {"name": NAME, "url": srv.url + UPSTREAM, "sha256": SHA256, "dl": str(dl)}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], env=env)
    try:
        deadline = time.monotonic() + 20
        while not (part.is_file() and part.stat().st_size >= SIZE // 4):
            assert child.poll() is None, "the download ended before it could be killed"
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    kept = part.stat().st_size
    assert 0 < kept < SIZE and part.read_bytes() == PAYLOAD[:kept]
    assert not (dl / NAME).exists()

    srv.clear_faults()
    srv.clear_requests()
    path = fetch(_remote(srv), FetchSettings(dl_dir=dl, progress="none"), package=PKG)
    assert _gets(srv) == [(UPSTREAM, f"bytes={kept}-")]
    assert path.read_bytes() == PAYLOAD
    assert not part.exists()


@pytest.mark.unit
def test_partial_with_a_wrong_prefix_is_rejected_and_downloaded_whole(
    srv: FaultServer, tmp_path: Path
) -> None:
    dl = tmp_path / "dl"
    (dl / ".partial").mkdir(parents=True)
    (dl / ".partial" / f"{NAME}.part").write_bytes(b"\0" * 1000)  # not what upstream serves
    settings = FetchSettings(dl_dir=dl, progress="none")
    path = fetch(_remote(srv), settings, package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(UPSTREAM, "bytes=1000-"), (UPSTREAM, None)]
    rejected = dl / ".rejected" / NAME
    assert rejected.read_bytes() == b"\0" * 1000 + PAYLOAD[1000:]
    assert not (dl / ".partial" / f"{NAME}.part").exists()


@pytest.mark.unit
def test_pinning_never_continues_an_old_partial(srv: FaultServer, tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    (dl / ".partial").mkdir(parents=True)
    (dl / ".partial" / f"{NAME}.part").write_bytes(b"\0" * 1000)  # nothing could catch it
    remote = RemoteFile(NAME, (srv.url + UPSTREAM,), {})
    _, digests = download_for_pin(remote, FetchSettings(dl_dir=dl, progress="none"), package=PKG)
    assert digests == {"sha256": SHA256}
    assert _gets(srv) == [(UPSTREAM, None)]


# -- 3. size cap and dl/.rejected ---------------------------------------------------------------


@pytest.mark.unit
def test_endless_response_stops_at_the_size_cap(srv: FaultServer, tmp_path: Path) -> None:
    srv.fault(UPSTREAM, "endless")  # no Content-Length, never ends
    dl = tmp_path / "dl"
    settings = FetchSettings(dl_dir=dl, progress="none", max_size=2 * SIZE, retries=0, deadline=5.0)
    start = time.monotonic()
    with pytest.raises(DownloadError) as exc:
        fetch(_remote(srv), settings, package=PKG)
    assert time.monotonic() - start < 10
    msg = str(exc.value)
    assert f"{srv.url}{UPSTREAM}: the response sent more than" in msg
    assert f"size cap of {2 * SIZE} bytes ([downloads] max_size)" in msg
    assert not (dl / NAME).exists() and list((dl / ".partial").iterdir()) == []


@pytest.mark.unit
def test_announced_length_over_the_cap_is_refused_before_reading(
    srv: FaultServer, tmp_path: Path
) -> None:
    srv.fault(PRIMARY, "endless", length=1 << 40)
    dl = tmp_path / "dl"
    settings = _settings(dl, srv, max_size=2 * SIZE, deadline=5.0)
    path, took, log = _timed_fetch(_remote(srv), settings)
    assert path.read_bytes() == PAYLOAD
    assert took < 5
    assert f"{srv.url}{PRIMARY}: the response announces {1 << 40} bytes" in log
    assert [p for p, _ in _gets(srv)] == [PRIMARY, UPSTREAM]


@pytest.mark.unit
def test_pinned_size_is_the_cap(srv: FaultServer, tmp_path: Path) -> None:
    srv.fault(PRIMARY, "endless")
    dl = tmp_path / "dl"
    settings = _settings(dl, srv, known_sizes={NAME: SIZE}, deadline=5.0)
    path, _, log = _timed_fetch(_remote(srv), settings)
    assert path.read_bytes() == PAYLOAD
    assert f"size cap of {SIZE} bytes (the size recorded in the pin lock file)" in log


@pytest.mark.unit
def test_rejected_keeps_one_private_copy_and_says_how_to_clear_it(
    srv: FaultServer, tmp_path: Path
) -> None:
    dl = tmp_path / "dl"
    for path in (PRIMARY, UPSTREAM, BACKUP):
        srv.fault(path, "wrong_bytes")
    for _ in range(2):
        with pytest.raises(DigestMismatch) as exc:
            fetch(_remote(srv), _settings(dl, srv, progress="none"), package=PKG)
    rejected = dl / ".rejected"
    assert sorted(rejected.iterdir()) == [rejected / NAME]
    assert (rejected / NAME).stat().st_mode & 0o777 == 0o600
    assert rejected.stat().st_mode & 0o777 == 0o700
    assert f"`rm -r {rejected}`" in str(exc.value)


@pytest.mark.unit
def test_rejected_local_copy_is_private_too(srv: FaultServer, tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / ".rejected").mkdir(mode=0o755)
    (dl / NAME).write_bytes(b"tampered")
    log = io.StringIO()
    fetch(_remote(srv), FetchSettings(dl_dir=dl, progress="plain"), package=PKG, log=log)
    assert (dl / ".rejected" / NAME).read_bytes() == b"tampered"
    assert (dl / ".rejected" / NAME).stat().st_mode & 0o777 == 0o600
    assert (dl / ".rejected").stat().st_mode & 0o777 == 0o700
    assert f"`rm -r {dl / '.rejected'}`" in log.getvalue()


@pytest.mark.unit
def test_parse_size() -> None:
    assert parse_size("64M") == 64 << 20
    assert parse_size("2G") == 2 << 30
    assert parse_size("512k") == 512 << 10
    assert parse_size(1000) == parse_size("1000") == 1000
    for bad in ("1.5M", "lots", True, -1, None, ""):
        with pytest.raises(ValueError):
            parse_size(bad)


# -- 4. only URLs the downloader supports --------------------------------------------------------


@pytest.mark.unit
def test_check_url() -> None:
    assert {"http", "https", "file"} <= set(SUPPORTED_SCHEMES)
    assert not {"ftp", "ftps"} & set(SUPPORTED_SCHEMES)  # no handler with our limits for them
    for ok in ("https://example.org/a.tar.gz", "http://h/a", "file:///srv/mirror/a.tar.gz"):
        check_url(ok, where="test")
    for bad, why in (
        ("ftp://ftp.example.org/a.tar.gz", "uses ftp://"),
        ("rsync://example.org/a", "uses rsync://"),
        ("example.org/a.tar.gz", "uses no scheme"),
        ("https:///a.tar.gz", "names no host"),
    ):
        with pytest.raises(ConfigError, match=why) as exc:
            check_url(bad, where="recipe r.py")
        assert str(exc.value).startswith("recipe r.py: the URL") and bad in str(exc.value)


@pytest.mark.unit
def test_loader_refuses_a_recipe_url_the_downloader_cannot_fetch(
    tmp_path: Path, dist: Dist
) -> None:
    proj = make_project(tmp_path / "proj", dist, "http://127.0.0.1:9")
    recipe = proj / "recipes" / "libgreet.py"
    text = recipe.read_text()
    url = "http://127.0.0.1:9/upstream/libgreet-1.0.tar.gz"
    assert url in text
    recipe.write_text(text.replace(url, "ftp://ftp.example.org/libgreet-1.0.tar.gz"))
    with pytest.raises(ConfigError) as exc:
        Project.load(proj / "configs" / "board.toml", proj)
    msg = str(exc.value)
    assert str(recipe) in msg and "ftp://ftp.example.org/libgreet-1.0.tar.gz" in msg
    assert "does not fetch" in msg


@pytest.mark.unit
def test_shipped_recipes_list_only_supported_urls() -> None:
    project = Project.load(REPO / "configs" / "siso.toml", REPO)  # loading checks every URL
    for pkg in project.packages.values():
        for source in (*pkg.sources, *pkg.patches):
            for url in source.urls:
                assert url.split("://", 1)[0] in SUPPORTED_SCHEMES, (pkg.name, url)


# -- the settings: board file and environment ---------------------------------------------------


def _project_with(tmp_path: Path, dist: Dist, downloads: str) -> Project:
    proj = make_project(tmp_path / "proj", dist, "http://127.0.0.1:9")
    board = proj / "configs" / "board.toml"
    board.write_text(board.read_text() + "\n[downloads]\n" + textwrap.dedent(downloads))
    return Project.load(board, proj)


@pytest.mark.unit
def test_settings_from_the_board_and_the_environment(
    tmp_path: Path, dist: Dist, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("FWBUILD_DL_TIMEOUT", "FWBUILD_DL_DEADLINE", "FWBUILD_DL_MIN_SPEED"):
        monkeypatch.delenv(var, raising=False)
    project = _project_with(
        tmp_path, dist, 'timeout = 7\ndeadline = 90.5\nmin_speed = 100\nmax_size = "64M"\n'
    )
    s = fetch_settings(project)
    assert (s.read_timeout, s.deadline, s.min_speed, s.max_size) == (7.0, 90.5, 100, 64 << 20)
    monkeypatch.setenv("FWBUILD_DL_TIMEOUT", "2.5")
    monkeypatch.setenv("FWBUILD_DL_DEADLINE", "30")
    monkeypatch.setenv("FWBUILD_DL_MIN_SPEED", "0")
    s = fetch_settings(project)  # the environment wins
    assert (s.read_timeout, s.deadline, s.min_speed) == (2.5, 30.0, 0)
    monkeypatch.setenv("FWBUILD_DL_DEADLINE", "soon")
    with pytest.raises(ConfigError, match=r"FWBUILD_DL_DEADLINE .* must be a number of seconds"):
        fetch_settings(project)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('timeout = "soon"', "timeout"),
        ("deadline = 0", "deadline"),
        ("min_speed = 1.5", "min_speed"),
        ("min_speed = true", "min_speed"),
        ('max_size = "big"', "max_size"),
        ("max_size = -1", "max_size"),
    ],
)
def test_wrong_download_settings_are_named(
    tmp_path: Path, dist: Dist, monkeypatch: pytest.MonkeyPatch, line: str, key: str
) -> None:
    for var in ("FWBUILD_DL_TIMEOUT", "FWBUILD_DL_DEADLINE", "FWBUILD_DL_MIN_SPEED"):
        monkeypatch.delenv(var, raising=False)
    # The board schema may refuse the value as the project loads; fetch_settings does otherwise.
    with pytest.raises(ConfigError) as exc:
        fetch_settings(_project_with(tmp_path, dist, line + "\n"))
    assert "downloads" in str(exc.value) and key in str(exc.value)


@pytest.mark.unit
def test_pinned_sizes_become_caps(tmp_path: Path, dist: Dist) -> None:
    proj = make_project(tmp_path / "proj", dist, "http://127.0.0.1:9")
    recipe = proj / "recipes" / "libgreet.py"
    sha = dist.sha256("libgreet-1.0.tar.gz")
    recipe.write_text(recipe.read_text().replace(f', sha256="{sha}"', ""))  # pinned by the lock
    pins = Pins.load(proj / "configs" / "pins.lock")
    for name in ("libgreet-1.0.tar.gz", "hello-1.0.tar.gz"):
        pins.record(name, {"sha256": dist.sha256(name), "size": len(dist.files[name])})
    project = Project.load(proj / "configs" / "board.toml", proj)
    # hello's recipe pins its own digest: a lock-file entry (perhaps stale) does not cap it.
    assert fetch_settings(project).known_sizes == {
        "libgreet-1.0.tar.gz": len(dist.files["libgreet-1.0.tar.gz"])
    }
