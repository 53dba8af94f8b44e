"""What a project's ``dodo.py`` calls: one line turns a board file into doit's tasks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fwbuild.errors import BuildError


def load(board_file: Path, project_dir: Path | None = None) -> dict[str, Any]:
    """``task_*`` functions and ``DOIT_CONFIG`` for the board; a bad board exits with its error.

    ``project_dir`` holds recipes/, patches/ and configs/ (default: the board file's grandparent).
    """
    from fwbuild.tasks import doit_config, make_tasks

    try:
        tasks: dict[str, Any] = make_tasks(board_file, project_dir)
        tasks["DOIT_CONFIG"] = doit_config(board_file, project_dir)
    except BuildError as exc:
        print(f"fwbuild: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return tasks
