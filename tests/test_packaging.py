"""The project installs as a package: a wheel built from the checkout runs the demo model from any folder.

The wheel is installed with ``--no-deps`` into a temporary target (the dependencies are those of this environment),
and the client runs in another folder with only that target on ``PYTHONPATH``, so nothing is read from the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "wheel"), str(REPO)], check=True, cwd=root
    )
    wheel = next((root / "wheel").glob("momask_rebuild-*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "--target", str(root / "site"), str(wheel)], check=True, cwd=root)
    return root / "site"


def run_outside(site: Path, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_python_api_runs_from_another_folder(installed: Path, tmp_path: Path) -> None:
    code = (
        "import models; from models.pipeline import MoMaskPipeline; "
        "m = MoMaskPipeline.demo().generate(['a person walks forward'])[0]; "
        "print(models.__file__); print(*m.joints.shape)"
    )
    out = run_outside(installed, [sys.executable, "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    where, shape = out.stdout.strip().splitlines()[-2:]
    assert Path(where).resolve().is_relative_to(installed.resolve()), where  # the installed copy, not the checkout
    frames, joints, xyz = map(int, shape.split())
    assert joints == 22 and xyz == 3 and 4 <= frames <= 196


def test_console_entry_point_writes_bvh(installed: Path, tmp_path: Path) -> None:
    out = run_outside(
        installed,
        [
            str(installed / "bin" / "momask-gen"),
            "--text",
            "a person jumps up",
            "--out_dir",
            str(tmp_path / "gen"),
            "--device",
            "cpu",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    bvh = list((tmp_path / "gen").rglob("*.bvh"))
    assert len(bvh) == 1 and bvh[0].read_text().startswith("HIERARCHY")
