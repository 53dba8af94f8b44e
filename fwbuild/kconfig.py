"""Kconfig fragments: merge them into a ``.config`` and prove every requested value stuck.

A kernel's own ``oldconfig`` (and kconfiglib's ``set_value``) silently drop a symbol whose
dependencies are unmet. So after the tree's tool has had its say, every requested value is read
back; one that did not stick is an error naming the symbol, what it became, and the dependencies
its Kconfig entry states, with their current values, which is usually the whole diagnosis.

Fragment lines are the ``.config`` syntax: ``CONFIG_X=y``, ``CONFIG_X=m``, ``CONFIG_X="text"``,
``CONFIG_X=123`` and ``# CONFIG_X is not set``; other comments and blank lines are ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fwbuild.errors import BuildError, ConfigError
from fwbuild.fsutil import atomic_write

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
_ENTRY = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_DEPENDS = re.compile(r"^\s*depends(?:\s+on)?\s+(.+?)\s*$")
_SYMBOL = re.compile(r"\b([A-Z][A-Z0-9_]+)\b")


def parse_fragment(path: Path) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if m := _SET.match(line):
            wanted[m[1]] = m[2]
        elif m := _UNSET.match(line):
            wanted[m[1]] = "n"
        elif line and not line.startswith("#"):
            raise ConfigError(
                f"{path}:{number}: {raw.strip()!r} is neither `CONFIG_X=value` nor "
                "`# CONFIG_X is not set`"
            )
    return wanted


def read_config(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if m := _SET.match(line):
            values[m[1]] = m[2]
        elif m := _UNSET.match(line):
            values[m[1]] = "n"
    return values


def merge(config: Path, wanted: dict[str, str]) -> None:
    """Rewrite ``config`` with the fragment's values replacing (or added to) its own."""
    kept = []
    for line in config.read_text().splitlines():
        m = _SET.match(line) or _UNSET.match(line)
        if m and m[1] in wanted:
            continue
        kept.append(line)
    kept += [f"# {k} is not set" if v == "n" else f"{k}={v}" for k, v in wanted.items()]
    atomic_write(config, "\n".join(kept) + "\n")


def stated_dependencies(tree: Path, symbol: str) -> list[str] | None:
    """``symbol``'s ``depends on`` expressions in the tree's Kconfig files; None: not defined."""
    name = symbol.removeprefix("CONFIG_")
    found: list[str] | None = None
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fname in filenames:
            if not fname.startswith("Kconfig"):
                continue
            current = None
            for line in (Path(dirpath) / fname).read_text(errors="replace").splitlines():
                if m := _ENTRY.match(line):
                    current = m[1]
                    if current == name and found is None:
                        found = []
                elif line.strip().startswith(("menu ", "choice", "endchoice", "endmenu", "if ")):
                    current = None
                elif current == name and found is not None and (m := _DEPENDS.match(line)):
                    found.append(m[1])
    return found


def verify(config: Path, wanted: dict[str, str], tree: Path, *, package: str, source: Path) -> None:
    have = read_config(config)
    wrong = {k: have.get(k, "n") for k, v in wanted.items() if have.get(k, "n") != v}
    if not wrong:
        return
    lines = []
    for symbol, got in wrong.items():
        deps = stated_dependencies(tree, symbol)
        detail = ""
        if deps is None:
            detail = "; no Kconfig file of this tree defines it"
        elif deps:
            symbols = sorted(set(_SYMBOL.findall(" ".join(deps))))
            values = ", ".join(f"{s}={have.get('CONFIG_' + s, 'n')}" for s in symbols)
            detail = f"; it depends on {' && '.join(deps)} (now {values})"
        lines.append(f"{symbol}: wanted {wanted[symbol]}, got {got}{detail}")
    raise BuildError(
        f"{len(wrong)} value(s) from {source} did not stick after the kernel's oldconfig "
        f"(it drops symbols whose dependencies are unmet): " + "; ".join(lines) + ". Add the "
        "missing dependencies to the fragment, or remove the symbol if this tree lacks it",
        package=package,
    )
