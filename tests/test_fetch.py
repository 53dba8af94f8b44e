"""fwbuild.fetch against a real HTTP server on 127.0.0.1 (tests/support/httpserver.py)."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.httpserver import FaultServer, mirrors_holding

from fwbuild import fetch as fetch_mod
from fwbuild.errors import DigestMismatch, DownloadError
from fwbuild.fetch import (
    FetchSettings,
    RemoteFile,
    download_for_pin,
    fetch,
    file_digest,
    verify,
)

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

NAME = "ppp-2.4.3.tar.gz"
SIZE = 1 << 20
PKG = "ppp"
PRIMARY = f"/primary/{NAME}"
UPSTREAM = f"/upstream/{NAME}"
BACKUP = f"/backup/{NAME}"


def _payload() -> bytes:
    # Deterministic, non-repeating content.
    out = bytearray()
    seed = b"fwbuild"
    while len(out) < SIZE:
        seed = hashlib.sha256(seed).digest()
        out += seed * 64
    return bytes(out[:SIZE])


PAYLOAD = _payload()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "RETRY_DELAY", 0.0)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[FaultServer]:
    with mirrors_holding(tmp_path / "srv", NAME, PAYLOAD) as srv:
        yield srv


@pytest.fixture
def dl_dir(tmp_path: Path) -> Path:
    return tmp_path / "dl"


def _remote(srv: FaultServer, digests: dict[str, str] | None = None) -> RemoteFile:
    return RemoteFile(
        filename=NAME,
        urls=(srv.url + UPSTREAM,),
        digests={"sha256": SHA256} if digests is None else digests,
    )


def _settings(dl_dir: Path, srv: FaultServer | None = None, **kw: object) -> FetchSettings:
    base = FetchSettings(
        dl_dir=dl_dir,
        primary_mirror=f"{srv.url}/primary" if srv else None,
        backup_mirrors=(f"{srv.url}/backup",) if srv else (),
        progress="none",
        connect_timeout=2.0,
        read_timeout=5.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _gets(srv: FaultServer) -> list[tuple[str, str | None]]:
    return [(path, rng) for method, path, rng in srv.requests if method == "GET"]


def _leftovers(dl_dir: Path) -> list[Path]:
    partial = dl_dir / ".partial"
    return sorted(partial.iterdir()) if partial.is_dir() else []


# -- the happy path and mirror order ---------------------------------------------------------


def test_success_from_recipe_url(srv: FaultServer, dl_dir: Path) -> None:
    path = fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert path == dl_dir / NAME
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(UPSTREAM, None)]
    assert _leftovers(dl_dir) == []


def test_primary_mirror_404_falls_back_to_recipe_url(srv: FaultServer, dl_dir: Path) -> None:
    srv.fault(PRIMARY, "404")
    path = fetch(_remote(srv), _settings(dl_dir, srv), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(PRIMARY, None), (UPSTREAM, None)]


def test_primary_mirror_is_tried_first(srv: FaultServer, dl_dir: Path) -> None:
    fetch(_remote(srv), _settings(dl_dir, srv), package=PKG)
    assert _gets(srv) == [(PRIMARY, None)]


def test_wrong_bytes_rejected_then_next_url(srv: FaultServer, dl_dir: Path) -> None:
    srv.fault(PRIMARY, "wrong_bytes")
    path = fetch(_remote(srv), _settings(dl_dir, srv), package=PKG)
    assert path.read_bytes() == PAYLOAD
    rejected = dl_dir / ".rejected" / NAME
    assert rejected.is_file()
    assert rejected.stat().st_size == SIZE
    assert rejected.read_bytes() != PAYLOAD
    assert _gets(srv) == [(PRIMARY, None), (UPSTREAM, None)]
    assert _leftovers(dl_dir) == []


def test_server_error_is_retried(srv: FaultServer, dl_dir: Path) -> None:
    srv.fault(UPSTREAM, "500", times=1)
    path = fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(UPSTREAM, None), (UPSTREAM, None)]


# -- resume ----------------------------------------------------------------------------------


def test_cut_connection_is_resumed_with_range(srv: FaultServer, dl_dir: Path) -> None:
    half = SIZE // 2
    srv.fault(UPSTREAM, "cut", after=half, times=1)
    path = fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(UPSTREAM, None), (UPSTREAM, f"bytes={half}-")]
    assert _leftovers(dl_dir) == []


def test_repeated_cuts_make_progress(srv: FaultServer, dl_dir: Path) -> None:
    step = SIZE // 3 + 1
    srv.fault(UPSTREAM, "cut", after=step, times=2)
    path = fetch(_remote(srv), _settings(dl_dir, retries=2), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [
        (UPSTREAM, None),
        (UPSTREAM, f"bytes={step}-"),
        (UPSTREAM, f"bytes={2 * step}-"),
    ]


def test_server_ignoring_range_restarts_from_zero(srv: FaultServer, dl_dir: Path) -> None:
    half = SIZE // 2
    srv.fault(UPSTREAM, "cut", after=half, times=1)
    srv.fault(UPSTREAM, "no_range")
    path = fetch(_remote(srv), _settings(dl_dir), package=PKG)
    # The second answer was a 200 with the whole file: appended, it would double the prefix.
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(UPSTREAM, None), (UPSTREAM, f"bytes={half}-")]


def test_cuts_beyond_retries_move_on(srv: FaultServer, dl_dir: Path) -> None:
    srv.fault(UPSTREAM, "cut", after=1000)
    remote = _remote(srv)
    settings = _settings(dl_dir, backup_mirrors=(f"{srv.url}/backup",), retries=2)
    path = fetch(remote, settings, package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert [p for p, _ in _gets(srv)] == [UPSTREAM] * 3 + [BACKUP]


# -- total failure ---------------------------------------------------------------------------


def test_all_mirrors_bad_raises_digest_mismatch(srv: FaultServer, dl_dir: Path) -> None:
    for path in (PRIMARY, UPSTREAM, BACKUP):
        srv.fault(path, "wrong_bytes")
    with pytest.raises(DigestMismatch) as exc:
        fetch(_remote(srv), _settings(dl_dir, srv), package=PKG)
    msg = str(exc.value)
    assert msg.startswith(f"{PKG}:")
    assert NAME in msg
    rejected = sorted((dl_dir / ".rejected").iterdir())
    assert rejected == [dl_dir / ".rejected" / NAME]  # one copy per name, not one per mirror
    actual = hashlib.sha256(rejected[0].read_bytes()).hexdigest()
    assert actual != SHA256
    assert f"expected sha256 {SHA256}, got {actual}" in msg
    for path in (PRIMARY, UPSTREAM, BACKUP):
        assert srv.url + path in msg
    assert "FWBUILD_PRIMARY_MIRROR" in msg
    assert f"doit pin:{PKG}" in msg
    assert not (dl_dir / NAME).exists()
    assert _leftovers(dl_dir) == []


def test_all_404_lists_every_url(srv: FaultServer, dl_dir: Path) -> None:
    remote = RemoteFile(
        NAME, (srv.url + "/nope/" + NAME, "ftp://ftp.example.org/" + NAME), {"sha256": SHA256}
    )
    settings = _settings(dl_dir, primary_mirror=f"{srv.url}/gone")
    with pytest.raises(DownloadError) as exc:
        fetch(remote, settings, package=PKG)
    assert not isinstance(exc.value, DigestMismatch)
    msg = str(exc.value)
    assert f"{srv.url}/gone/{NAME}: HTTP 404" in msg
    assert f"{srv.url}/nope/{NAME}: HTTP 404" in msg
    assert "ftp not supported" in msg
    assert not (dl_dir / NAME).exists()
    assert _leftovers(dl_dir) == []


def test_cut_summary_in_message(srv: FaultServer, dl_dir: Path) -> None:
    srv.fault(UPSTREAM, "cut", after=1000)
    with pytest.raises(DownloadError) as exc:
        fetch(_remote(srv), _settings(dl_dir, retries=2), package=PKG)
    assert "connection cut after 1000 bytes \N{MULTIPLICATION SIGN}3" in str(exc.value)
    assert _leftovers(dl_dir) == []
    assert not (dl_dir / NAME).exists()


def test_keyboard_interrupt_leaves_no_file_under_the_real_name(
    srv: FaultServer, dl_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted, the bytes stay in .partial (never under the real name) and are continued."""
    monkeypatch.setattr(fetch_mod, "CHUNK_SIZE", 64 << 10)

    def interrupt(self: object, pos: int) -> None:
        if pos >= SIZE // 4:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(fetch_mod._Progress, "update", interrupt)
        with pytest.raises(KeyboardInterrupt):
            fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert not (dl_dir / NAME).exists()
    (part,) = _leftovers(dl_dir)
    kept = part.stat().st_size
    assert SIZE // 4 <= kept < SIZE and part.read_bytes() == PAYLOAD[:kept]
    srv.clear_requests()
    assert fetch(_remote(srv), _settings(dl_dir), package=PKG).read_bytes() == PAYLOAD
    assert _gets(srv) == [(UPSTREAM, f"bytes={kept}-")]
    assert _leftovers(dl_dir) == []


# -- no network when it must not be used -----------------------------------------------------


def test_unpinned_refuses_without_network(srv: FaultServer, dl_dir: Path) -> None:
    with pytest.raises(DownloadError) as exc:
        fetch(_remote(srv, digests={}), _settings(dl_dir, srv), package=PKG)
    msg = str(exc.value)
    assert f"doit pin:{PKG}" in msg
    assert "no known digest" in msg
    assert srv.url + UPSTREAM in msg
    assert srv.requests == []


def test_offline_missing_file_fails_without_network(srv: FaultServer, dl_dir: Path) -> None:
    with pytest.raises(DownloadError) as exc:
        fetch(_remote(srv), _settings(dl_dir, srv, offline=True), package=PKG)
    msg = str(exc.value)
    assert NAME in msg and str(dl_dir) in msg and PKG in msg
    assert "FWBUILD_OFFLINE=0" in msg and "doit source" in msg
    assert srv.requests == []


def test_offline_cached_file_is_used(srv: FaultServer, dl_dir: Path) -> None:
    dl_dir.mkdir()
    (dl_dir / NAME).write_bytes(PAYLOAD)
    path = fetch(_remote(srv), _settings(dl_dir, srv, offline=True), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert srv.requests == []


def test_offline_corrupt_cached_file_is_an_error(srv: FaultServer, dl_dir: Path) -> None:
    dl_dir.mkdir()
    (dl_dir / NAME).write_bytes(b"x" * 100)
    with pytest.raises(DigestMismatch) as exc:
        fetch(_remote(srv), _settings(dl_dir, offline=True), package=PKG)
    assert "offline" in str(exc.value) and SHA256 in str(exc.value)
    assert srv.requests == []
    assert not (dl_dir / NAME).exists()


def test_cached_valid_file_makes_no_request(srv: FaultServer, dl_dir: Path) -> None:
    fetch(_remote(srv), _settings(dl_dir), package=PKG)
    srv.clear_requests()
    for _ in range(2):
        assert fetch(_remote(srv), _settings(dl_dir), package=PKG).read_bytes() == PAYLOAD
    assert srv.requests == []


def test_cached_file_uses_sidecar_and_rehashes_when_changed(
    srv: FaultServer, dl_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fetch(_remote(srv), _settings(dl_dir), package=PKG)
    hashed: list[Path] = []
    real = fetch_mod._hash_file

    def spy(p: Path, algos: object) -> dict[str, str]:
        hashed.append(p)
        return real(p, algos)  # type: ignore[arg-type]

    monkeypatch.setattr(fetch_mod, "_hash_file", spy)
    fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert hashed == []  # sidecar vouched for it

    # Same size, same mtime, different bytes (written in place): the inode stays, so make the
    # change visible the way editors and cp do it: a new file under the name.
    st = path.stat()
    tmp = path.with_name("tmp")
    tmp.write_bytes(bytes(SIZE))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
    srv.clear_requests()
    assert fetch(_remote(srv), _settings(dl_dir), package=PKG).read_bytes() == PAYLOAD
    assert hashed  # re-hashed, found wrong
    assert (dl_dir / ".rejected" / NAME).read_bytes() == bytes(SIZE)
    assert _gets(srv) == [(UPSTREAM, None)]


def test_corrupt_cached_file_moved_aside_and_redownloaded(srv: FaultServer, dl_dir: Path) -> None:
    dl_dir.mkdir()
    (dl_dir / NAME).write_bytes(b"truncated")
    path = fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert (dl_dir / ".rejected" / NAME).read_bytes() == b"truncated"
    assert _gets(srv) == [(UPSTREAM, None)]


# -- concurrency -----------------------------------------------------------------------------


def _fetch_in_child(remote: RemoteFile, settings: FetchSettings, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    path = fetch(remote, settings, package=PKG, log=io.StringIO())
    if path.read_bytes() != PAYLOAD:
        raise SystemExit(3)


def test_two_processes_download_once(srv: FaultServer, dl_dir: Path) -> None:
    # The slow answer keeps the first process inside the lock while the second one arrives.
    srv.fault(UPSTREAM, "slow", delay=0.5)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    args = (_remote(srv), _settings(dl_dir), barrier)
    procs = [ctx.Process(target=_fetch_in_child, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert srv.count("GET", UPSTREAM) == 1
    assert (dl_dir / NAME).read_bytes() == PAYLOAD


# -- pin, timeouts, digests, schemes ---------------------------------------------------------


def test_download_for_pin_returns_sha256(srv: FaultServer, dl_dir: Path) -> None:
    path, digests = download_for_pin(_remote(srv, digests={}), _settings(dl_dir), package=PKG)
    assert digests == {"sha256": SHA256}
    assert path == dl_dir / NAME and path.read_bytes() == PAYLOAD
    srv.clear_requests()
    # Once pinned, fetch() trusts it without the network.
    fetch(_remote(srv), _settings(dl_dir), package=PKG)
    assert srv.requests == []


def test_download_for_pin_keeps_listed_algorithms(srv: FaultServer, dl_dir: Path) -> None:
    remote = _remote(srv, digests={"md5": "00" * 16})  # stale pin: not checked
    _, digests = download_for_pin(remote, _settings(dl_dir), package=PKG)
    assert digests == {"sha256": SHA256, "md5": MD5}


def test_download_for_pin_replaces_a_changed_local_copy(srv: FaultServer, dl_dir: Path) -> None:
    dl_dir.mkdir()
    (dl_dir / NAME).write_bytes(b"old release")
    path, digests = download_for_pin(_remote(srv, digests={}), _settings(dl_dir), package=PKG)
    assert digests["sha256"] == SHA256 and path.read_bytes() == PAYLOAD
    assert (dl_dir / ".rejected" / NAME).read_bytes() == b"old release"


def test_failed_pin_keeps_the_local_copy(srv: FaultServer, dl_dir: Path) -> None:
    dl_dir.mkdir()
    (dl_dir / NAME).write_bytes(b"old release")
    srv.fault(UPSTREAM, "404")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_for_pin(_remote(srv, digests={}), _settings(dl_dir), package=PKG)
    assert (dl_dir / NAME).read_bytes() == b"old release"


def test_slow_server_times_out_and_next_url_is_used(srv: FaultServer, dl_dir: Path) -> None:
    srv.fault(PRIMARY, "slow", delay=3)
    settings = _settings(dl_dir, srv, read_timeout=0.3, retries=0)
    path = fetch(_remote(srv), settings, package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert _gets(srv) == [(PRIMARY, None), (UPSTREAM, None)]


def test_md5_only_digest(srv: FaultServer, dl_dir: Path) -> None:
    path = fetch(_remote(srv, digests={"md5": MD5}), _settings(dl_dir), package=PKG)
    assert path.read_bytes() == PAYLOAD
    srv.fault(UPSTREAM, "wrong_bytes")
    with pytest.raises(DigestMismatch, match=f"expected md5 {MD5}"):
        fetch(_remote(srv, digests={"md5": MD5}), _settings(dl_dir / "2"), package=PKG)


def test_file_url_mirror(srv: FaultServer, dl_dir: Path) -> None:
    mirror = (srv.root / "backup").as_uri()
    remote = RemoteFile(NAME, (), {"sha256": SHA256})
    path = fetch(remote, _settings(dl_dir, primary_mirror=mirror), package=PKG)
    assert path.read_bytes() == PAYLOAD
    assert srv.requests == []


def test_verify_and_file_digest(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(PAYLOAD)
    assert file_digest(f, "sha256") == SHA256
    assert verify(f, {"sha256": SHA256, "md5": MD5.upper()}) is None
    assert verify(f, {"sha256": "0" * 64}) == {"sha256": SHA256}
    with pytest.raises(ValueError):
        verify(f, {})


# -- progress --------------------------------------------------------------------------------


def test_plain_progress_is_bounded(
    srv: FaultServer, dl_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_mod, "CHUNK_SIZE", 16 << 10)  # 64 chunks, 64 updates
    log = io.StringIO()  # not a tty: "auto" means plain lines
    fetch(_remote(srv), _settings(dl_dir, progress="auto"), package=PKG, log=log)
    lines = log.getvalue().splitlines()
    assert 2 <= len(lines) <= 6, lines
    assert "\r" not in log.getvalue()
    assert lines[0].startswith(f"{PKG}: {NAME} 20% ")
    assert "done" in lines[-1] and srv.url + UPSTREAM in lines[-1]


def test_bar_progress_and_none(
    srv: FaultServer, dl_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_mod, "CHUNK_SIZE", 16 << 10)
    monkeypatch.setattr(fetch_mod._Progress, "BAR_INTERVAL", 0.0)
    log = io.StringIO()
    fetch(_remote(srv), _settings(dl_dir, progress="bar"), package=PKG, log=log)
    out = log.getvalue()
    assert out.count("\r") > 5 and "100%" in out and out.endswith("\n")
    assert out.count("\n") == 1 and "done" in out.rsplit("\r", 1)[-1]

    log = io.StringIO()
    fetch(_remote(srv), _settings(dl_dir / "2", progress="none"), package=PKG, log=log)
    assert log.getvalue() == ""
