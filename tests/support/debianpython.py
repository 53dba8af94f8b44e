"""Debian 12's own ``python3``, which a fresh Debian machine's ``.venv`` is made from.

It is 3.11.2, without ``tarfile``'s extraction filters (PEP 706, Python 3.11.4): what the engine
extracts must work there too, and this machine's ``python3`` may be a newer one (pyenv). The
extraction modules import only the standard library, so that interpreter runs them as it is.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")


def require_filterless_python() -> Path:
    """Debian's python3, or skip when this machine's has extraction filters (or is absent)."""
    if not DEBIAN_PYTHON.exists():
        pytest.skip(f"{DEBIAN_PYTHON} is not installed")
    probe = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import tarfile; print(hasattr(tarfile, 'data_filter'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    if probe.stdout.strip() != "False":
        pytest.skip(f"{DEBIAN_PYTHON} has tarfile's extraction filters: nothing older to run on")
    return DEBIAN_PYTHON


def run_filterless(code: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run ``code`` (with ``args`` as sys.argv[1:]) under Debian's python3 with this checkout's
    engine importable; fails the test with the child's output when it fails."""
    python = require_filterless_python()
    child_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    run = subprocess.run([str(python), "-c", code, *args], env=child_env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
