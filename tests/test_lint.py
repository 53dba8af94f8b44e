"""The code is lint-clean and the engine type-checks: CI fails on either, not a reviewer.

The same commands run from .pre-commit-config.yaml before a commit; the last test keeps the two
lists equal, so a hook cannot check less than CI does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# name -> argv after the tool; what pre-commit's hooks run too
CHECKS = {
    "ruff-check": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],  # files and options: [tool.mypy] in pyproject.toml
}


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    tool = BIN / argv[0]
    exe = str(tool) if tool.exists() else argv[0]
    return subprocess.run(
        [exe, *argv[1:]], cwd=REPO, capture_output=True, text=True, check=False, timeout=600
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check_passes(name: str) -> None:
    proc = _run(CHECKS[name])
    assert proc.returncode == 0, f"{' '.join(CHECKS[name])} failed:\n{proc.stdout}{proc.stderr}"


def test_mypy_fails_on_a_type_error(tmp_path: Path) -> None:
    """The type check is real: a module with a type error makes mypy fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    proc = _run(["mypy", "--config-file", str(REPO / "pyproject.toml"), str(bad)])
    assert proc.returncode != 0 and "Incompatible return value" in proc.stdout, proc.stdout


def test_pre_commit_hooks_run_the_ci_checks() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert set(hooks) == set(CHECKS)
    for name, argv in CHECKS.items():
        assert hooks[name]["entry"] == " ".join([f".venv/bin/{argv[0]}", *argv[1:]]), name
        assert hooks[name]["pass_filenames"] is False, name  # whole tree, as CI
