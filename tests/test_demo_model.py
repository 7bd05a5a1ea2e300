"""The embedded demo model (checkpoints/demo, trained by prepare/train_demo.sh on dataset_demo).

It must work offline right after install, follow its captions, and say when a caption is unlike anything it knows.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.pipeline import MoMaskPipeline
from utils.checkpoint import load_checkpoint
from visualization.bvh import read_bvh

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "dataset_demo" / "HumanML3D"

# caption -> the demo clips it describes (the two straight walks are one action)
CAPTIONS = {
    "a person walks forward": ("000000", "000001"),
    "a person runs forward": ("000006",),
    "a person jumps forward twice": ("000007",),
    "a person does two backflips in a row": ("000008",),
    "a person does a cartwheel to their left": ("000009",),
    "a person crawls forward on hands and knees": ("000010",),
    "a person kicks high with their right leg": ("000015",),
    "a person spins around acrobatically": ("000018",),
}
SEEDS = 5


@pytest.fixture(scope="module")
def pipe() -> MoMaskPipeline:
    return MoMaskPipeline.demo()


def _descriptors(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-frame pose + root-motion descriptors in the canonical (facing) frame: feature dims 0..66
    (root rotation/linear velocity, root height, root-relative joint positions), normalised."""
    return ((features - mean) / std)[:, :67]


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return float(d.min(axis=1).mean() + d.min(axis=0).mean())


def test_checkpoints_are_small_and_load_weights_only() -> None:
    """The generation model (VQ, masked, residual, length estimator) is at most 20 MB; every file loads with
    weights_only=True and holds no optimizer state (release files made by prepare/strip_checkpoint.py)."""
    root = MoMaskPipeline.DEMO_CHECKPOINTS / "t2m"
    runs = ("rvq_demo", "mtrans_demo", "rtrans_demo", "length_estimator")
    model_files = [f for run in runs for f in (root / run / "model").glob("*.tar")]
    assert len(model_files) == 4 and sum(f.stat().st_size for f in model_files) <= 20 * 2**20
    for f in sorted(root.rglob("*.tar")):
        assert not any(k.startswith("opt_") for k in load_checkpoint(f))   # load_checkpoint: weights_only=True
    for run in runs:
        assert (root / run / "opt.txt").is_file()


def test_demo_follows_its_captions(pipe: MoMaskPipeline) -> None:
    mean, std = np.load(DATA / "Mean.npy"), np.load(DATA / "Std.npy")
    clips = sorted(p.stem for p in (DATA / "new_joint_vecs").glob("[0-9]*.npy"))
    refs = {c: [_descriptors(np.load(DATA / "new_joint_vecs" / f"{m}{c}.npy"), mean, std) for m in ("", "M")]
            for c in clips}
    texts = [t for t in CAPTIONS for _ in range(SEEDS)]
    lengths = [np.load(DATA / "new_joint_vecs" / f"{CAPTIONS[t][0]}.npy").shape[0] for t in texts]
    motions = pipe.generate(texts, lengths, seed=0)
    hits: dict[str, int] = {t: 0 for t in CAPTIONS}
    for text, motion in zip(texts, motions):
        gen = _descriptors(motion.features, mean, std)
        dist = {c: min(_chamfer(gen, r) for r in refs[c]) for c in clips}
        own = min(dist[c] for c in CAPTIONS[text])
        other = min(d for c, d in dist.items() if c not in CAPTIONS[text])
        hits[text] += own < other
    rates = {t: h / SEEDS for t, h in hits.items()}
    print("\nown clip nearest (fraction of seeds):", {CAPTIONS[t][0]: r for t, r in rates.items()})
    assert all(r >= 0.8 for r in rates.values()), rates


def test_unfamiliar_caption_still_gives_a_motion(pipe: MoMaskPipeline, caplog: pytest.LogCaptureFixture) -> None:
    assert pipe.warn_if_unfamiliar(["a person walks forward"]) == []
    with caplog.at_level("WARNING"):
        far = pipe.warn_if_unfamiliar(["the stock market closed higher today"])
    assert far and "only knows its ~20 actions" in caplog.text
    motion = pipe.generate(["the stock market closed higher today"], [80], seed=1)[0]
    assert motion.joints.shape == (80, 22, 3) and np.isfinite(motion.joints).all()


def test_readme_first_command_offline_in_a_temp_dir(tmp_path: Path) -> None:
    """README: python gen_t2m.py --text "a person walks forward", from another folder, without network."""
    cmd = [sys.executable, str(REPO / "gen_t2m.py"), "--text", "a person walks forward"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HOME=str(tmp_path))   # no model-hub cache to fall back on
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "embedded demo model" in proc.stderr
    bvhs = list((tmp_path / "generation/text2motion/animations/0").glob("*.bvh"))
    joints = list((tmp_path / "generation/text2motion/joints/0").glob("*.npy"))
    assert len(bvhs) == 1 and len(joints) == 1
    bvh = read_bvh(bvhs[0])
    assert bvh.num_frames == np.load(joints[0]).shape[0] >= 4


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="blender not on PATH")
def test_demo_bvh_imports_in_blender(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    """A demo BVH (gen_t2m's default template export) imports in Blender 3.4 exactly as our reader's FK
    describes it (< 1 mm), and its root follows the generated motion."""
    from visualization.blender_check import blender_joint_positions
    from visualization.joints2bvh import bvh_to_joints, rig_for, save_bvh

    motion = pipe.generate(["a person walks forward"], [80], seed=3)[0]
    path = save_bvh(motion.joints, tmp_path / "walk.bvh", pipe.spec)
    names, positions = blender_joint_positions(path)
    rig = rig_for(pipe.spec)
    blender = positions[:, [names.index(n) for n in rig.names]][:, rig.bvh_index]
    ours = bvh_to_joints(read_bvh(path), pipe.spec)
    assert blender.shape == motion.joints.shape
    assert np.abs(blender - ours).max() < 1e-3
    assert np.abs(blender[:, 0] - motion.joints[:, 0]).max() < 1e-3
