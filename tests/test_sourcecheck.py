"""``doit source-check``: every mirror of every source asked, without downloading, in a table;
a failure when a source has no live mirror left (fwbuild.sourcecheck).

Against the local "internet" of tests/test_fallbacks.py: an HTTP server and a ``git daemon`` on
127.0.0.1 (libgreet's upstream URL is dead and its git fallback alive).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist
from support.gitserver import GitDaemon
from support.httpserver import FaultServer
from test_fallbacks import _fallback_project, internet  # noqa: F401 - the fixture

HELLO = "hello-1.0.tar.gz"


def _row(output: str, url: str) -> str:
    rows = [line for line in output.splitlines() if f" {url} " in f" {line} "]
    assert len(rows) == 1, output
    return rows[0]


def test_live_dead_and_different_size_mirrors(
    internet: tuple[FaultServer, GitDaemon, dict[str, Any]],  # noqa: F811
    dist: Dist,
    tmp_path: Path,
) -> None:
    srv, _, facts = internet
    project = _fallback_project(tmp_path / "p", dist, srv, facts)
    env = doit_env(**facts["env"])
    fetched = run_doit(project, "fetch:hello", env=env)  # a verified copy: the size to compare
    assert fetched.returncode == 0, fetched.output
    (facts["web"] / "backup" / HELLO).write_bytes(b"not the tarball")  # a different file
    patch = facts["web"] / "upstream" / "hello-1.0-extra.patch.gz"
    patch.write_bytes(dist.files[patch.name])  # alive, but the recipe pins no digest
    asked = len(srv.requests)
    try:
        run = run_doit(project, "source-check", env=env)
    finally:
        (facts["web"] / "backup" / HELLO).unlink()
        patch.unlink()
    assert run.returncode == 0, run.output
    assert re.search(r"\sok\s+HTTP 200", _row(run.output, f"{srv.url}/upstream/{HELLO}"))
    assert re.search(r"\sdead\s+HTTP 404", _row(run.output, f"{srv.url}/primary/{HELLO}"))
    assert re.search(r"\ssize\s.*15 bytes", _row(run.output, f"{srv.url}/backup/{HELLO}"))
    dead = _row(run.output, f"{srv.url}/dead/libgreet-1.0.tar.gz")
    assert re.search(r"\sdead\s+HTTP 404", dead)
    assert re.search(r"\salive\s+commit", _row(run.output, facts["tree"]))
    # the original patch is not pinned: alive or not, a build cannot use it
    assert re.search(r"\sunpinned\s", _row(run.output, f"{srv.url}/upstream/{patch.name}"))
    assert not (project / "dl" / "libgreet-1.0.tar.gz").exists()  # nothing downloaded
    assert not list((project / "dl").glob("libgreet-1.0-git-*"))
    # HEAD, or a GET of one byte at most: nothing was downloaded
    assert {(m, r) for m, _, r in srv.requests[asked:]} <= {("HEAD", None), ("GET", "bytes=0-0")}


def test_no_live_mirror_left_fails_naming_the_source(
    internet: tuple[FaultServer, GitDaemon, dict[str, Any]],  # noqa: F811
    dist: Dist,
    tmp_path: Path,
) -> None:
    srv, _, facts = internet
    project = _fallback_project(tmp_path / "p", dist, srv, facts)
    # Without the insteadOf redirect the git host (git.example.invalid) does not exist.
    run = run_doit(project, "source-check", env=doit_env(FWBUILD_CHECK_TIMEOUT="5"))
    assert run.returncode != 0
    assert "libgreet: libgreet-1.0.tar.gz has no live mirror left" in run.output
    assert "hello: hello-1.0.tar.gz has no live mirror" not in run.output
    assert re.search(r"\sdead\s.*git ls-remote", _row(run.output, facts["tree"]))
