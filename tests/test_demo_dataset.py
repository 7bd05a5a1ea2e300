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
from prepare.demo_captions import CLIMB_CLIPS, DEMO_CLIPS, SUB_LENGTHS
from utils.motion import mirror_joints, recover_from_ric
from utils.skeleton import get_dataset_spec

SPEC = get_dataset_spec("t2m")
ROOT = Path(__file__).resolve().parents[1] / "dataset_demo" / "HumanML3D"
IDS = [c.clip_id for c in DEMO_CLIPS + CLIMB_CLIPS]
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
    # 68 clips of 133-196 frames (long enough to cut every demo length from) at 1316 bytes a frame, plus texts
    assert size < 17_000_000


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
    if joints[:, 15, 1].min() > 1.0:  # upright clips (head never low)
        assert joints[..., 1].min() < 0.01
        assert joints[:, FEET, 1].min() < 0.02  # a foot touches the floor
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
    # Root paths mirror closely; other joints differ only by the target skeleton's left/right length asymmetry.
    # Recovering a path integrates root velocities, so the difference grows along the path: within 1.5 % of
    # the path length (the 34 m run: 38 cm; crawling up a slope, 2.8 m: 8 cm), and the body about the root
    # within 5 cm.
    path = np.linalg.norm(np.diff(original[:, 0, [0, 2]], axis=0), axis=-1).sum()
    assert np.abs(expected[:, 0] - mirrored[:, 0]).max() < 0.02 + 0.03 * path
    about_root = (expected - expected[:, :1]) - (mirrored - mirrored[:, :1])
    assert np.abs(about_root).max() < 0.05


@pytest.mark.parametrize("clip", DEMO_CLIPS + CLIMB_CLIPS, ids=lambda c: c.clip_id)
def test_captions(clip) -> None:
    texts = read_text_file(ROOT / "texts" / f"{clip.clip_id}.txt")
    mirrored = read_text_file(ROOT / "texts" / f"M{clip.clip_id}.txt")
    whole = [t for t in texts if t.is_whole_clip]
    assert [t.caption for t in whole] == list(clip.captions) and len(whole) >= 3
    assert len(set(clip.captions)) == len(clip.captions)
    assert [t.caption for t in mirrored] == [swap_left_right(t.caption) for t in texts]
    assert [(t.start, t.end) for t in mirrored] == [(t.start, t.end) for t in texts]
    assert all(t.tokens and all("/" in tok for tok in t.tokens) for t in texts)
    # sub-ranges: the clip's own captions, one per length, each cut (as the loader cuts, at 20 fps) inside the clip
    frames = len(_features(clip.clip_id))
    cuts = [(int(t.start * 20), int(t.end * 20)) for t in texts if not t.is_whole_clip]
    assert all(t.caption in clip.captions for t in texts)
    assert all(0 <= a < b <= frames for a, b in cuts) and len({b - a for a, b in cuts}) == len(cuts)
    if clip in DEMO_CLIPS:  # DeepMimic clips: every demo length 40..196 is covered
        assert frames == 196 and sorted(b - a for a, b in cuts) == list(SUB_LENGTHS)
    else:  # climbing windows: sub-ranges keep most of the window
        assert cuts and all(b - a >= 0.8 * frames for a, b in cuts)


def test_turning_direction_matches_captions() -> None:
    """Walk-and-turn clips are displaced towards the side their captions name (left = +X) after 2.5 s (a
    circle brings them back later), and the straight walks stay within 10 degrees of straight ahead."""
    for clip in DEMO_CLIPS:
        words = " ".join(clip.captions)
        if not clip.is_walk:
            continue
        root = _joints(clip.clip_id)[:, 0]
        if "turn" in words:
            side = root[49, 0]
            assert (side > 0.3) if "left" in words else (side < -0.3), clip.clip_id
        else:
            assert abs(root[-1, 0]) < np.tan(np.deg2rad(10)) * root[-1, 2], clip.clip_id


def test_stats_and_loader() -> None:
    features = [_features(i) for i in ALL_IDS]
    mean, std = compute_mean_std(features, SPEC)
    paths = DatasetPaths(ROOT)
    np.testing.assert_allclose(np.load(paths.mean_file), mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.load(paths.std_file), std, rtol=1e-6)
    ds = Text2MotionDataset(ROOT, SPEC, mean, apply_feat_bias(std, SPEC), split="train", seed=0)
    # one item per clip plus one per captioned sub-range (all of them 40..188 frames long)
    train = paths.read_split("train")
    assert len(ds) == len(train) + sum(
        not t.is_whole_clip for i in train for t in read_text_file(paths.text_dir / f"{i}.txt")
    )
    caption, motion, length = ds[0]
    assert motion.shape == (196, 263) and np.isfinite(motion).all() and length % 4 == 0
