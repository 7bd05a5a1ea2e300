"""The conversion CLI (visualization.convert): golden round trips and clean failures.

Golden data: ``../shared/reference/humanml3d/new_joint_vecs|new_joints/012314.npy`` (shipped HumanML3D clip;
the official recover_from_ric maps features onto joints) and ``official_fixture/process_file_012314.npz``
(official process_file output for those joints). Skipped when ../shared is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utils.cli import run_cli
from visualization.convert import WRITERS, Motion, main

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
FEATURES = REFERENCE / "humanml3d/new_joint_vecs/012314.npy"
JOINTS = REFERENCE / "humanml3d/new_joints/012314.npy"
PROCESSED = REFERENCE / "official_fixture/process_file_012314.npz"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not available: {path}")
    return path


def _run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "visualization.convert", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        run_cli(main, argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    return err


def test_cli_features_to_joints_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "joints.npy"
    proc = _run_module(str(_need(FEATURES)), str(out))
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(out), np.load(JOINTS), atol=1e-5, rtol=0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_cli_joints_to_features_matches_official(tmp_path: Path) -> None:
    ref = np.load(_need(PROCESSED))
    src = tmp_path / "in.npy"
    np.save(src, ref["input_joints"])
    out = tmp_path / "sub" / "feats.npy"
    main([str(src), str(out), "--dataset", "humanml3d"])
    feats = np.load(out)
    assert feats.dtype == np.float32 and feats.shape == (169, 263)
    np.testing.assert_allclose(feats, ref["features"], atol=1e-4, rtol=0)
    # ... and back: --to joints is the default for feature input.
    back = tmp_path / "back.npy"
    main([str(out), str(back)])
    np.testing.assert_allclose(np.load(back), ref["recovered_joints"], atol=1e-5, rtol=0)


def test_cli_to_flag_and_writer_registry(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "in.npy"
    np.save(src, np.load(_need(FEATURES))[:20])
    same = tmp_path / "same.npy"
    main([str(src), str(same), "--to", "features"])
    np.testing.assert_array_equal(np.load(same), np.load(src))

    seen: list[Motion] = []

    def write_txt(motion: Motion, path: Path, args) -> None:
        seen.append(motion)
        np.savetxt(path, motion.as_joints().reshape(len(motion.as_joints()), -1))

    monkeypatch.setitem(WRITERS, ".txt", write_txt)
    out = tmp_path / "joints.txt"
    main([str(src), str(out)])
    assert seen[0].kind == "features" and seen[0].spec.name == "t2m"
    assert np.loadtxt(out).shape == (20, 66)


@pytest.mark.parametrize(
    "array, extra, message",
    [
        (np.zeros((10, 22, 4), np.float32), [], "expected features"),
        (np.zeros((10, 100), np.float32), [], "feature dimension 100"),
        (np.full((10, 22, 3), np.nan, np.float32), [], "NaN"),
        (np.zeros((2, 22, 3), np.float32), [], "at least 3 frames"),
        (np.zeros((10, 22, 3), np.float32), ["--dataset", "kit"], "kit has 21 joints"),
        (np.zeros((10, 22, 3), np.float32), ["--dataset", "amass"], "unknown dataset_name 'amass'"),
    ],
)
def test_cli_bad_input_exits_2_and_keeps_output(tmp_path: Path, capsys, array, extra, message: str) -> None:
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, array)
    out.write_bytes(b"previous result")
    err = _fails([str(src), str(out), *extra], capsys)
    assert message in err
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


def test_cli_missing_and_unsupported_files(tmp_path: Path, capsys) -> None:
    assert "not found" in _fails([str(tmp_path / "nope.npy"), str(tmp_path / "o.npy")], capsys)
    src = tmp_path / "in.npy"
    np.save(src, np.zeros((5, 263), np.float32))
    assert "unsupported extension '.xyz'" in _fails([str(src), str(tmp_path / "o.xyz")], capsys)
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    assert "not a .npy file" in _fails([str(bad), str(tmp_path / "o.npy")], capsys)


def test_cli_bad_input_subprocess(tmp_path: Path) -> None:
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, np.zeros((2, 263), np.float32))
    proc = _run_module(str(src), str(out))
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "at least 3 frames" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
