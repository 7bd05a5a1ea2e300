"""A tiny but valid dataset in the official layout, from procedural joint motions (for tests and smoke runs).

``make_tiny_dataset(tmp_path)`` writes ``<root>/HumanML3D`` (or ``KIT-ML``) with ``new_joint_vecs`` built by
``extract_features``, ``new_joints`` by ``recover_from_ric``, captions, splits and group-averaged Mean/Std.
The motions are forward kinematics of sinusoidal limb swings with a moving, turning root: smooth and
plausible, not human data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.feature_stats import compute_mean_std
from data.pos_tagging import fallback_tag
from data.text import TextAnnotation, write_text_file
from utils.kinematics import forward_kinematics
from utils.motion import extract_features, recover_from_ric
from utils.quaternion import qmul, quat_from_axis_angle, yaw_quat
from utils.skeleton import DatasetSpec, get_dataset_spec

_CAPTIONS = (
    ("a person walks forward", "someone walks ahead at a steady pace", "a figure strolls forward swinging its arms"),
    ("a person walks and turns slowly", "someone walks in a gentle curve", "the person turns while walking"),
    ("a person sways in place", "someone stands and rocks back and forth", "a figure sways its arms gently"),
)


def synthetic_joints(spec: DatasetSpec, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural motion (n_frames, J, 3) float32 on ``spec``'s skeleton (metres for t2m, mm-scale for kit)."""
    j = spec.joints_num
    offsets = spec.target_offsets
    unit = 1.0  # metres
    if offsets is None:  # KIT: no public target skeleton; use plausible millimetre bone lengths
        lengths = np.full(spec.joints_num, 150.0, dtype=np.float32)
        # Hips narrower than shoulders: with equal widths the reference IK facing vector cancels (docs/data.md#inverse-and-forward-kinematics).
        lengths[[5, 8]], lengths[[11, 16]], lengths[[12, 13, 17, 18]], lengths[[6, 7, 9, 10]] = 190, 90, 400, 270
        offsets, unit = spec.raw_offsets * lengths[:, None], 1000.0
    t = np.arange(n_frames, dtype=np.float32) / spec.fps
    freq = rng.uniform(0.7, 1.2)
    phase = rng.uniform(0, 2 * np.pi, size=j).astype(np.float32)
    amp = rng.uniform(0.05, 0.4, size=j).astype(np.float32)
    # Mirror pairs swing in anti-phase, like a gait.
    for left, right in spec.mirror_pairs:
        phase[right] = phase[left] + np.pi
        amp[right] = amp[left]
    angles = amp[None, :] * np.sin(2 * np.pi * freq * t[:, None] + phase[None, :])  # (T, J)
    axis = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    local = quat_from_axis_angle(np.broadcast_to(axis, (n_frames, j, 3)).copy(), angles.astype(np.float32))
    yaw = (rng.uniform(-0.6, 0.6) * t + rng.uniform(-np.pi, np.pi)).astype(np.float32)
    local[:, 0] = qmul(yaw_quat(yaw), local[:, 0] * np.array([1, 0.2, 0.2, 0.2], dtype=np.float32))
    local = local / np.linalg.norm(local, axis=-1, keepdims=True)
    speed = rng.uniform(0.0, 1.4) * unit
    heading = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], axis=-1)
    root = np.cumsum(heading * speed / spec.fps, axis=0).astype(np.float32)
    leg = float(np.abs(offsets[..., 1]).max() * 3.0)
    root[:, 1] = leg * (1.0 + 0.02 * np.sin(4 * np.pi * freq * t))
    return forward_kinematics(local.astype(np.float32), root, offsets.astype(np.float32), spec).astype(np.float32)


def make_tiny_dataset(root: str | Path, dataset_name: str = "t2m", n_clips: int = 8, seed: int = 0) -> Path:
    """Write a valid official-layout dataset under ``root`` and return its folder (``root/HumanML3D`` ...).

    Clips are 60-150 feature frames; every third clip also has a sub-range caption (0.5 s - 2.75 s).
    Splits: test and val get ``max(1, n_clips // 4)`` ids each, train the rest; ``train_val`` and ``all`` too.
    """
    if n_clips < 3:
        raise ValueError(f"make_tiny_dataset needs n_clips >= 3 (one per split), got {n_clips}")
    spec = get_dataset_spec(dataset_name)
    rng = np.random.default_rng(seed)
    folder = Path(root) / spec.data_folder
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(n_clips)]
    all_features = []
    for i, clip_id in enumerate(ids):
        joints = synthetic_joints(spec, int(rng.integers(61, 151)), rng)
        features = extract_features(joints, spec).astype(np.float32)
        np.save(folder / "new_joint_vecs" / f"{clip_id}.npy", features)
        np.save(
            folder / "new_joints" / f"{clip_id}.npy", recover_from_ric(features, spec.joints_num).astype(np.float32)
        )
        all_features.append(features)
        captions = _CAPTIONS[i % len(_CAPTIONS)]
        annotations = [TextAnnotation(c, tuple(fallback_tag(c))) for c in captions]
        if i % 3 == 0:
            sub = "a person moves their arms"
            annotations.append(TextAnnotation(sub, tuple(fallback_tag(sub)), 0.5, 2.75))
        write_text_file(folder / "texts" / f"{clip_id}.txt", annotations)
    mean, std = compute_mean_std(all_features, spec)
    np.save(folder / "Mean.npy", mean)
    np.save(folder / "Std.npy", std)
    k = max(1, n_clips // 4)
    splits = {"test": ids[:k], "val": ids[k : 2 * k], "train": ids[2 * k :]}
    splits["train_val"] = splits["train"] + splits["val"]
    splits["all"] = ids
    for name, split_ids in splits.items():
        (folder / f"{name}.txt").write_text("".join(f"{x}\n" for x in split_ids))
    return folder
