from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.genpkgs import Dist, make_dist
from support.httpserver import FaultServer
from support.layers import (  # noqa: F401 (hooks pytest finds here)
    pytest_runtest_call,
    pytest_runtest_setup,
    scan_hook,
)

scan_hook()


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; .ci/run installs it (see README)")
    return path


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    return make_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory: pytest.TempPathFactory, dist: Dist) -> Path:
    """/upstream and /backup hold every file, /primary only the hello tarball."""
    root = tmp_path_factory.mktemp("mirrors")
    dist.write(root / "upstream")
    dist.write(root / "backup")
    (root / "primary").mkdir()
    (root / "primary" / "hello-1.0.tar.gz").write_bytes(dist.files["hello-1.0.tar.gz"])
    return root


@pytest.fixture
def server(mirror_root: Path) -> Iterator[FaultServer]:
    with FaultServer(mirror_root) as srv:
        yield srv
