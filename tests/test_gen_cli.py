"""gen_t2m.py / edit_t2m.py end to end on tiny untrained runs in the official layout (t2m and kit, CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import MASK_NAME, RES_NAME, make_tiny_runs

import edit_t2m
import gen_t2m
from utils.skeleton import get_dataset_spec
from visualization.bvh import read_bvh
from visualization.joints2bvh import bvh_to_joints

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_tiny_runs(root, "t2m")
    make_tiny_runs(root, "kit")
    return root


def _args(runs: Path, out: Path, *extra: str, dataset: str = "t2m") -> list[str]:
    return [
        "--checkpoints_dir",
        str(runs),
        "--dataset_name",
        dataset,
        "--name",
        MASK_NAME,
        "--res_name",
        RES_NAME,
        "--out_dir",
        str(out),
        "--device",
        "cpu",
        *extra,
    ]


def test_text_to_npy_and_bvh(runs: Path, tmp_path: Path) -> None:
    gen_t2m.main(_args(runs, tmp_path, "--text", "a person walks forward", "--motion_length", "120"))
    root = tmp_path / "text2motion"
    joints = np.load(root / "joints/0/sample0_repeat0_len120.npy")
    features = np.load(root / "features/0/sample0_repeat0_len120.npy")
    assert joints.shape == (120, 22, 3) and features.shape == (120, 263)
    bvh = read_bvh(root / "animations/0/sample0_repeat0_len120.bvh")
    assert bvh.rotations.shape[0] == 120 and abs(bvh.frame_time - 0.05) < 1e-9
    # Template retargeting keeps bone directions, so the root path of the BVH is the motion's own.
    np.testing.assert_allclose(bvh_to_joints(bvh, get_dataset_spec("t2m"))[:, 0], joints[:, 0], atol=1e-4)


def test_prompt_file_lengths_and_seeds(runs: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person jumps#52\nsomeone waves#NA\na person kicks#97\n")
    for out in ("a", "b"):
        gen_t2m.main(_args(runs, tmp_path / out, "--text_path", str(prompts), "--seed", "7", "--outputs", "npy"))
    gen_t2m.main(_args(runs, tmp_path / "c", "--text_path", str(prompts), "--seed", "8", "--outputs", "npy"))
    files = {out: sorted((tmp_path / out / "text2motion/joints").rglob("*.npy")) for out in "abc"}
    names = [f.name for f in files["a"]]
    assert names[0] == "sample0_repeat0_len52.npy" and names[2] == "sample2_repeat0_len96.npy"
    assert names == [f.name for f in files["b"]]
    assert all(np.array_equal(np.load(x), np.load(y)) for x, y in zip(files["a"], files["b"]))
    assert not np.array_equal(np.load(files["a"][0]), np.load(files["c"][0]))


def test_kit_end_to_end(runs: Path, tmp_path: Path) -> None:
    gen_t2m.main(
        _args(
            runs, tmp_path, "--text", "a person walks", "--motion_length", "64", "--outputs", "npy,bvh", dataset="kit"
        )
    )
    joints = np.load(tmp_path / "text2motion/joints/0/sample0_repeat0_len64.npy")
    assert joints.shape == (64, 21, 3)
    bvh = read_bvh(tmp_path / "text2motion/animations/0/sample0_repeat0_len64.bvh")
    # Untrained weights give non-rigid skeletons, so only the root path is exact here (real motions: test_bvh).
    np.testing.assert_allclose(bvh_to_joints(bvh, get_dataset_spec("kit"))[:, 0], joints[:, 0], atol=1e-4)
    assert abs(bvh.frame_time - 1 / 12.5) < 1e-9


def test_chained_long_motion(runs: Path, tmp_path: Path) -> None:
    gen_t2m.main(
        _args(
            runs,
            tmp_path,
            "--text",
            "walk forward",
            "--text",
            "sit down",
            "--motion_length",
            "160",
            "--chain",
            "--outputs",
            "npy",
        )
    )
    assert np.load(tmp_path / "text2motion/joints/0/sample0_repeat0_len320.npy").shape == (320, 22, 3)


@pytest.mark.parametrize(
    "content,message",
    [
        ("a person jumps#52\nnumber#abc\n", "prompts.txt:2: length 'abc'"),
        ("#40\n", "prompts.txt:1: empty caption"),
        ("walk#300\n", "out of range"),
    ],
)
def test_bad_prompt_file_writes_nothing(runs: Path, tmp_path: Path, content: str, message: str) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(content)
    with pytest.raises(ValueError, match=message):
        gen_t2m.main(_args(runs, tmp_path / "out", "--text_path", str(prompts)))
    assert not (tmp_path / "out").exists()


def test_cli_errors_exit_nonzero(runs: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "gen_t2m.py"), *_args(runs, tmp_path / "out", "--text", "")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "empty caption" in proc.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="run folder .*nope"):
        gen_t2m.main(["--checkpoints_dir", str(runs), "--name", "nope", "--text", "walk", "--out_dir", str(tmp_path)])


def test_edit_keeps_frames_outside_the_span(runs: Path, tmp_path: Path, reference_dir: Path) -> None:
    full = np.load(reference_dir / "momask/000612_features.npy")  # 199 frames: refused, not cut
    with pytest.raises(ValueError, match="199 frames, editing takes at most 196"):
        edit_t2m.main(
            _args(
                runs,
                tmp_path,
                "--source_motion",
                str(reference_dir / "momask/000612_features.npy"),
                "--text",
                "a person jumps",
                "-msec",
                "1s,3s",
            )
        )
    source = tmp_path / "source.npy"
    np.save(source, full[:196])
    edit_t2m.main(
        _args(
            runs,
            tmp_path,
            "--source_motion",
            str(source),
            "--text",
            "a person jumps",
            "-msec",
            "1s,3s",
            "--outputs",
            "npy",
        )
    )
    out = np.load(tmp_path / "editing/features/0/sample0_repeat0_len196.npy")
    assert out.shape == (196, 263)
    np.testing.assert_array_equal(out[:20], full[:20])
    np.testing.assert_array_equal(out[60:], full[60:196])
    with pytest.raises(ValueError, match="not a non-empty span inside"):
        edit_t2m.main(
            _args(runs, tmp_path / "bad", "--source_motion", str(source), "--text", "jump", "-msec", "8s,12s")
        )
    assert not (tmp_path / "bad").exists()
