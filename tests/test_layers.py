"""The `unit` mark cannot drift from what a test does (tests/support/layers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # it starts pytest, which is neither doit, a compiler nor qemu

SUPPORT = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(SUPPORT)!r})
from support.layers import pytest_runtest_call, pytest_runtest_setup  # noqa: F401
"""

CASES = """
import subprocess, sys
import pytest

@pytest.fixture(scope="session")
def built():
    subprocess.run([sys.executable, "-m", "doit", "--version"], capture_output=True)

@pytest.mark.unit
def test_fixture_runs_doit(built):
    pass

@pytest.mark.unit
def test_runs_make():
    subprocess.run(["make", "--version"], capture_output=True)

@pytest.mark.unit
def test_runs_ls():
    subprocess.run(["ls"], capture_output=True, check=True)

def test_end_to_end_may_run_make():
    subprocess.run(["make", "--version"], capture_output=True, check=True)
"""


def test_a_unit_test_that_starts_doit_or_a_compiler_fails(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(CASES)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    out = proc.stdout
    assert "ERROR test_cases.py::test_fixture_runs_doit" in out, out  # in its fixture's set-up
    assert "FAILED test_cases.py::test_runs_make" in out, out
    assert "is marked `unit` but starts make" in out, out
    assert "PASSED test_cases.py::test_runs_ls" in out, out
    assert "PASSED test_cases.py::test_end_to_end_may_run_make" in out, out
