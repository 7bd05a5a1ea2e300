"""The committed demo dataset (dataset_demo/HumanML3D, DeepMimic clips; see dataset_demo/PROVENANCE.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data.checks import check_dataset
from data.feature_stats import compute_mean_std
from data.layout import DatasetPaths, apply_feat_bias
from data.t2m_dataset import Text2MotionDataset
from data.text import read_text_file
from prepare.build_dataset import swap_left_right
from prepare.demo_captions import DEMO_CLIPS
from utils.motion import mirror_joints, recover_from_ric
from utils.skeleton import get_dataset_spec

SPEC = get_dataset_spec("t2m")
ROOT = Path(__file__).resolve().parents[1] / "dataset_demo" / "HumanML3D"
IDS = [c.clip_id for c in DEMO_CLIPS]
ALL_IDS = IDS + ["M" + i for i in IDS]
FEET = [7, 8, 10, 11]


def _features(clip_id: str) -> np.ndarray:
    return np.load(ROOT / "new_joint_vecs" / f"{clip_id}.npy")


def _joints(clip_id: str) -> np.ndarray:
    return np.load(ROOT / "new_joints" / f"{clip_id}.npy")


def test_layout_is_clean_and_complete() -> None:
    assert check_dataset(ROOT, SPEC) == []
    assert sorted(DatasetPaths(ROOT).read_split("all")) == sorted(ALL_IDS)
    size = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert size < 4_000_000


@pytest.mark.parametrize("clip_id", ALL_IDS)
def test_features_recover_to_joints(clip_id: str) -> None:
    features, joints = _features(clip_id), _joints(clip_id)
    assert features.dtype == np.float32 and features.shape[1] == 263 and 40 <= len(features) < 200
    assert np.abs(recover_from_ric(features, 22) - joints).max() <= 1e-4


@pytest.mark.parametrize("clip_id", IDS)
def test_feet_on_floor_and_skeleton(clip_id: str) -> None:
    joints = _joints(clip_id)
    # The floor is the lowest joint over all T+1 input frames; new_joints has T (the last frame is dropped).
    assert -1e-4 < joints[..., 1].min() < 0.05
    if joints[:, 15, 1].min() > 1.0:                               # upright clips (head never low)
        assert joints[..., 1].min() < 0.01
        assert joints[:, FEET, 1].min() < 0.02                    # a foot touches the floor
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(SPEC.parents[1:])], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(SPEC.target_bone_lengths, bones.shape), atol=2e-3)


@pytest.mark.parametrize("clip", [c for c in DEMO_CLIPS if c.is_walk], ids=lambda c: c.clip_id)
def test_walking_clips_speed_and_contact(clip) -> None:
    joints = _joints(clip.clip_id)
    speed = np.linalg.norm(np.diff(joints[:, 0, [0, 2]], axis=0), axis=-1).mean() * SPEC.fps
    is_turning = any("turn" in c or "curve" in c for c in clip.captions)
    # straight walking 0.8-1.8 m/s; walking in a tight circle is a little slower (0.77 m/s measured)
    assert (0.7 if is_turning else 0.8) <= speed <= 1.8
    # a supporting foot: on most frames one foot (ankle or toe) is within 3 cm of the floor
    lowest = joints[:, FEET, 1].min(axis=1)
    assert np.mean(lowest < 0.03) > 0.85
    # pelvis height of an adult
    assert 0.8 < joints[:, 0, 1].mean() < 1.05


@pytest.mark.parametrize("clip_id", IDS)
def test_left_is_plus_x_in_canonical_facing(clip_id: str) -> None:
    """Frame 0 is rotated to face +Z; SMPL left joints (1 L_hip, 16 L_shoulder) then lie at +X."""
    j0 = _joints(clip_id)[0]
    assert j0[1, 0] > j0[2, 0] and j0[16, 0] > j0[17, 0]


@pytest.mark.parametrize("clip_id", IDS)
def test_mirrored_clips_are_mirror_images(clip_id: str) -> None:
    original, mirrored = _joints(clip_id), _joints("M" + clip_id)
    expected = mirror_joints(original, SPEC)
    # root paths mirror closely; other joints differ only by the target skeleton's left/right length asymmetry
    # (the 10.8 m run accumulates 1.5 cm of root drift)
    assert np.abs(expected[:, 0] - mirrored[:, 0]).max() < 0.02
    assert np.abs(expected - mirrored).max() < 0.03


@pytest.mark.parametrize("clip", DEMO_CLIPS, ids=lambda c: c.clip_id)
def test_captions(clip) -> None:
    texts = read_text_file(ROOT / "texts" / f"{clip.clip_id}.txt")
    mirrored = read_text_file(ROOT / "texts" / f"M{clip.clip_id}.txt")
    assert [t.caption for t in texts] == list(clip.captions) and len(texts) >= 3
    assert len({t.caption for t in texts}) == len(texts)
    assert [t.caption for t in mirrored] == [swap_left_right(c) for c in clip.captions]
    assert all(t.tokens and all("/" in tok for tok in t.tokens) and t.is_whole_clip for t in texts)


def test_turning_direction_matches_captions() -> None:
    """Walk-and-turn clips end displaced towards the side their captions name (left = +X)."""
    for clip in DEMO_CLIPS:
        words = " ".join(clip.captions)
        if "turn" not in words or not clip.is_walk:
            continue
        end = _joints(clip.clip_id)[-1, 0, 0]
        assert (end > 0.3) if "left" in words else (end < -0.3), clip.clip_id


def test_stats_and_loader() -> None:
    features = [_features(i) for i in ALL_IDS]
    mean, std = compute_mean_std(features, SPEC)
    paths = DatasetPaths(ROOT)
    np.testing.assert_allclose(np.load(paths.mean_file), mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.load(paths.std_file), std, rtol=1e-6)
    ds = Text2MotionDataset(ROOT, SPEC, mean, apply_feat_bias(std, SPEC), split="train", seed=0)
    assert len(ds) == len(paths.read_split("train"))
    caption, motion, length = ds[0]
    assert motion.shape == (196, 263) and np.isfinite(motion).all() and length % 4 == 0
