"""Real climbing capture shipped with ``holosoma-retargeting`` -> 22-joint HumanML3D-style joints at 20 fps.

The package (PyPI ``holosoma-retargeting`` 0.1.0, Apache-2.0) ships ``demo_data/climb/mocap_climb_seq_{0..4}/
*_joint_positions_f*.npy``: float32 (T, 53, 3) global joint positions in metres, Z up, 120 fps, joints in the
order of its ``MOCAP_DEMO_JOINTS`` (Mixamo-like names). A person walks up to boxes, climbs onto them, stands,
crouches and climbs down; one take crawls up a slope on hands and feet.

Mapping to the SMPL joint order (docs/data.md): 21 joints by name (Hips -> pelvis, Spine -> spine1,
Spine1 -> spine3, Neck, Head, Left/RightShoulder -> collars, Arm -> shoulder, ForeArm -> elbow, Hand -> wrist,
UpLeg -> hip, Leg -> knee, Foot -> ankle, ToeBase -> foot); spine2 is the midpoint of Spine and Spine1. Then the
pelvis and spine3 groups get the SMPL template's shape (``prepare.body_geometry``). Frames are every 6th
(120 -> 20 fps); axes become HumanML3D's (Y up) by a proper rotation (x, y, z) -> (x, z, -y); the facing
direction is canonicalised later by ``extract_features``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prepare.body_geometry import fit_template_geometry
from utils.npy import load_npy

SOURCE_FPS = 120
STRIDE = 6  # 120 fps -> 20 fps
NUM_SOURCE_JOINTS = 53
# SMPL joint -> index in MOCAP_DEMO_JOINTS (Hips 0, Spine 1, Spine1 2, Neck 3, Head 4, LeftShoulder 5,
# LeftArm 6, LeftForeArm 7, LeftHand 8, RightShoulder 24, RightArm 25, RightForeArm 26, RightHand 27,
# LeftUpLeg 43, LeftLeg 44, LeftFoot 45, LeftToeBase 46, RightUpLeg 47, RightLeg 48, RightFoot 49,
# RightToeBase 50); spine2 (SMPL 6) is interpolated.
SMPL_FROM_SOURCE = {
    0: 0,
    1: 43,
    2: 47,
    3: 1,
    4: 44,
    5: 48,
    7: 45,
    8: 49,
    9: 2,
    10: 46,
    11: 50,
    12: 3,
    13: 5,
    14: 24,
    15: 4,
    16: 6,
    17: 25,
    18: 7,
    19: 26,
    20: 8,
    21: 27,
}
SOURCE_NAMES = {
    0: "Hips",
    1: "Spine",
    2: "Spine1",
    3: "Neck",
    4: "Head",
    5: "LeftShoulder",
    8: "LeftHand",
    24: "RightShoulder",
    27: "RightHand",
    43: "LeftUpLeg",
    46: "LeftToeBase",
    47: "RightUpLeg",
    50: "RightToeBase",
}


def default_climb_dir() -> Path:
    """``holosoma_retargeting/demo_data/climb`` of the installed package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("holosoma_retargeting")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "holosoma-retargeting is not installed: pip install holosoma-retargeting==0.1.0, or pass --climb_dir"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "demo_data" / "climb"


def check_joint_names(names: list[str]) -> None:
    """Fail loudly if the package's joint order is not the one :data:`SMPL_FROM_SOURCE` was written for."""
    wrong = {i: n for i, n in SOURCE_NAMES.items() if i >= len(names) or names[i] != n}
    if len(names) != NUM_SOURCE_JOINTS or wrong:
        raise ValueError(
            f"holosoma MOCAP_DEMO_JOINTS changed (expected {NUM_SOURCE_JOINTS} joints with "
            f"{SOURCE_NAMES}); this converter was written for holosoma-retargeting 0.1.0"
        )


def take_file(climb_dir: Path, take: int) -> Path:
    """The joint-position file of ``mocap_climb_seq_<take>``."""
    files = sorted((climb_dir / f"mocap_climb_seq_{take}").glob("*_joint_positions_f*.npy"))
    if len(files) != 1:
        raise FileNotFoundError(
            f"{climb_dir}/mocap_climb_seq_{take}: expected one *_joint_positions_f*.npy, "
            f"found {len(files)}; is this holosoma_retargeting/demo_data/climb?"
        )
    return files[0]


def to_smpl_joints(source: np.ndarray) -> np.ndarray:
    """(T, 53, 3) Z-up capture at 120 fps -> (ceil(T / 6), 22, 3) float32 SMPL joints, Y up, 20 fps."""
    source = np.asarray(source, dtype=np.float64)
    if source.ndim != 3 or source.shape[1:] != (NUM_SOURCE_JOINTS, 3):
        raise ValueError(f"expected (T, {NUM_SOURCE_JOINTS}, 3) joint positions, got {source.shape}")
    src = source[::STRIDE]
    joints = np.zeros((len(src), 22, 3))
    for smpl, k in SMPL_FROM_SOURCE.items():
        joints[:, smpl] = src[:, k]
    joints[:, 6] = (src[:, 1] + src[:, 2]) / 2
    joints = np.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], axis=-1)  # Z up -> Y up
    return fit_template_geometry(joints)


@dataclass(frozen=True)
class ClimbClip:
    """One demo clip cut from a take: frames ``[start, end)`` at 20 fps, with hand-written captions."""

    clip_id: str
    take: int
    start: int
    end: int
    captions: tuple[str, ...]


def convert_take(climb_dir: Path, clip: ClimbClip) -> np.ndarray:
    """The clip's frames of its take as (end - start, 22, 3) SMPL joints."""
    path = take_file(climb_dir, clip.take)
    joints = to_smpl_joints(load_npy(path, "climb capture", shape=(None, NUM_SOURCE_JOINTS, 3), dtype=np.float64))
    if not 0 <= clip.start < clip.end <= len(joints):
        raise ValueError(
            f"{clip.clip_id}: frames [{clip.start}, {clip.end}) outside take {clip.take} "
            f"({len(joints)} frames at 20 fps)"
        )
    return joints[clip.start : clip.end]
