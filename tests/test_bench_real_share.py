"""bench/run.py's ``clean_real_overhead_pct`` (issue 15) reads a built tree's stamps, logs and
report, never builds: checked here on a generated tree whose stages run a known command and do
known in-process work, built clean and then rebuilt in part."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.doitrun import run_doit
from support.scalepkgs import DODO, minimal_board, recipe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_build  # noqa: E402
import run as bench  # noqa: E402


def _recipe(name: str) -> str:
    return recipe(
        name,
        imports="import time\n\n",
        install='        ctx.run("sleep", "0.4")  # a command: logged with its seconds\n'
        "        time.sleep(0.2)  # in-process work of the stage\n",
    )


def _project(root: Path, names: list[str]) -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "dodo.py").write_text(DODO)
    (root / "configs" / "board.toml").write_text(minimal_board("share", names))
    for name in names:
        (root / "recipes" / f"{name}.py").write_text(_recipe(name))
    return root


def test_the_real_share_is_read_from_stamps_and_logs(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", ["pa", "pb"])
    tasks = ["install:pa", "install:pb"]
    assert run_doit(project, *tasks).returncode == 0
    build = str(project / "build")
    clean = bench.measure_clean_real(build)
    # commands: 2 x 0.4 s (the logs give them to the millisecond); in the stages besides: at
    # least 2 x 0.2 s, and not the commands. The bench's figures are rounded to 0.01 s each, so
    # their difference is the commands' time within 0.01 s (it once came out as 0.79999).
    commands = bench_build.command_seconds(Path(build))
    assert 0.8 <= commands < 1.2, commands
    figures = clean["clean_real_stage_s"] - clean["clean_real_in_process_s"]
    assert figures == pytest.approx(commands, abs=0.0101), clean
    # The in-process share holds the two sleeps and the engine's own work, never the commands:
    # were they counted, it would be at least the sleeps plus the commands. (Its engine part is
    # 0.03 s here, but was 0.43 s in the CI run, on a fresh machine, that failed on the rounding
    # above. An absolute cap of 0.8 s guessed at that part; this bound is the property itself.)
    in_process = clean["clean_real_in_process_s"]
    assert 0.4 <= in_process < 0.4 + commands - 0.01, clean
    pct = 100 * clean["clean_real_in_process_s"] / clean["clean_real_stage_s"]
    assert abs(clean["clean_real_overhead_pct"] - pct) < 1, clean  # (its parts are rounded)
    # every stage ran: the report's wall time is that of a clean build
    assert clean["clean_real_in_process_s"] * 100 / clean["clean_real_wall_pct"] > 0.8, clean

    # A rebuild of one package: the figures are its stages' last runs, and the report is no
    # longer a clean build's, so there is no wall-time share.
    (project / "recipes" / "pa.py").write_text(_recipe("pa") + "# edited\n")
    rerun = run_doit(project, *tasks)
    assert rerun.returncode == 0 and "install:pb" not in rerun.ran, rerun.output
    again = bench.measure_clean_real(build)
    assert "clean_real_wall_pct" not in again and again["clean_real_overhead_pct"] > 0, again


def test_a_tree_without_stamps_is_left_out(tmp_path: Path) -> None:
    assert bench.measure_clean_real(str(tmp_path)) == {}
