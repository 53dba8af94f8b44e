"""The reliability contract in README.md: every row names tests that exist and run by default.

The table is what a user can rely on when they feed the build bad input; a row whose test was
renamed or deleted would be a promise nobody checks any more.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

REPO = Path(__file__).resolve().parents[1]
_TEST = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`")


def _contract_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Reliability contract", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows if "---" not in row][1:]  # without the header


def _markers(function: ast.FunctionDef, module: ast.Module) -> set[str]:
    found = set()
    for node in [*function.decorator_list, *module.body]:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            node = node.value
        found |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    return found


def test_every_row_names_existing_default_suite_tests() -> None:
    rows = _contract_rows()
    assert len(rows) >= 20, "the contract table is missing or was cut"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), f"a row needs input, behaviour and test: {row}"
        named = _TEST.findall(cells[2])
        assert named, f"row names no test: {row}"
        for file, name in named:
            module = ast.parse((REPO / file).read_text())
            functions = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef)}
            assert name in functions, f"{file}::{name} (README contract) does not exist"
            # the default suite runs it: not one of the real-source tests
            assert "real_sources" not in _markers(functions[name], module), f"{file}::{name}"
