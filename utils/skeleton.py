"""Dataset facts in one table: skeletons, feature layout and processing constants (docs/data.md#feature-vector, docs/data.md#inverse-and-forward-kinematics).

Everything that differs between HumanML3D (``t2m``) and KIT-ML (``kit``) lives in :data:`DATASETS`;
code elsewhere asks :func:`get_dataset_spec` instead of branching on the dataset name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# docs/data.md#dataset-constants: kinematic chains, root first.
T2M_CHAINS = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20))
KIT_CHAINS = ((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10))

T2M_JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
KIT_JOINT_NAMES = (
    "root",
    "BP",
    "BT",
    "BLN",
    "BUN",
    "LS",
    "LE",
    "LW",
    "RS",
    "RE",
    "RW",
    "LH",
    "LK",
    "LA",
    "LMrot",
    "LF",
    "RH",
    "RK",
    "RA",
    "RMrot",
    "RF",
)
# Common names for KIT joints (so a control file can say "pelvis" or "left_wrist" on either dataset).
KIT_JOINT_ALIASES = (
    ("pelvis", 0),
    ("head", 4),
    ("left_wrist", 7),
    ("right_wrist", 10),
    ("left_foot", 15),
    ("right_foot", 20),
)

# docs/data.md#dataset-constants: unit bone directions in the rest pose (row = child joint).
T2M_RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 0, 1],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float32,
)
KIT_RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [0, 1, 0],
        [0, 1, 0],
        [0, 1, 0],
        [0, 1, 0],
        [1, 0, 0],
        [0, -1, 0],
        [0, -1, 0],
        [-1, 0, 0],
        [0, -1, 0],
        [0, -1, 0],
        [1, 0, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [-1, 0, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 0, 1],
        [0, 0, 1],
    ],
    dtype=np.float32,
)

# docs/data.md#dataset-constants: HumanML3D target skeleton bone lengths (metres) for joints 1..21 (example 000021).
T2M_TARGET_BONE_LENGTHS = np.array(
    [
        0.103074,
        0.109883,
        0.131568,
        0.393623,
        0.390188,
        0.143190,
        0.432433,
        0.425643,
        0.057365,
        0.143382,
        0.149419,
        0.219360,
        0.137487,
        0.143383,
        0.103039,
        0.131614,
        0.122984,
        0.256840,
        0.263092,
        0.266012,
        0.269876,
    ],
    dtype=np.float32,
)

# docs/data.md#raw-pipeline: left/right joint pairs swapped when mirroring (x -> -x).
T2M_MIRROR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))
KIT_MIRROR_PAIRS = ((5, 8), (6, 9), (7, 10), (11, 16), (12, 17), (13, 18), (14, 19), (15, 20))


def parents_from_chains(chains: tuple[tuple[int, ...], ...], num_joints: int) -> tuple[int, ...]:
    """Parent index of every joint (-1 for the root) from root-first kinematic chains."""
    parents = [-1] * num_joints
    for chain in chains:
        for parent, child in zip(chain[:-1], chain[1:]):
            parents[child] = parent
    return tuple(parents)


@dataclass(frozen=True)
class DatasetSpec:
    """Per-dataset constants (docs/data.md#feature-vector, docs/data.md#dataset-constants). Lengths are in frames unless named otherwise."""

    name: str
    joints_num: int
    dim_pose: int
    fps: float
    chains: tuple[tuple[int, ...], ...]
    raw_offsets: np.ndarray  # (J, 3) unit rest-pose bone directions
    joint_names: tuple[str, ...]
    face_joint_idx: tuple[int, int, int, int]
    fid_l: tuple[int, int]  # left (ankle, toe)
    fid_r: tuple[int, int]  # right (ankle, toe)
    l_idx1: int  # lower-leg joints used for the retargeting scale
    l_idx2: int
    feet_thre: float  # foot-contact threshold on squared per-frame displacement
    min_motion_length: int  # text datasets skip shorter clips
    max_motion_length: int = 196
    max_motion_length_exclusive: int = 200
    unit_length: int = 4  # VQ down-sampling factor
    window_size: int = 64  # VQ training window
    plot_radius: float = 4.0
    mirror_pairs: tuple[tuple[int, int], ...] = ()
    data_folder: str = "HumanML3D"
    target_bone_lengths: np.ndarray | None = None  # (J-1,) default retargeting skeleton, None = keep source
    joint_aliases: tuple[tuple[str, int], ...] = ()  # extra (name, index) pairs accepted by joint_index

    def joint_index(self, joint: str | int) -> int:
        """Index of a joint given by name (case-insensitive; ``joint_names`` or an alias) or index (0..J-1)."""
        if isinstance(joint, (int, np.integer)) and not isinstance(joint, bool):
            if 0 <= joint < self.joints_num:
                return int(joint)
            raise ValueError(f"joint index {joint} is out of range: {self.name} has joints 0..{self.joints_num - 1}")
        names = {n.lower(): i for i, n in enumerate(self.joint_names)} | dict(self.joint_aliases)
        key = str(joint).strip().lower()
        if key.isdigit():
            return self.joint_index(int(key))
        if key not in names:
            raise ValueError(
                f"unknown joint {joint!r} for {self.name}: use an index 0..{self.joints_num - 1} or one "
                f"of {', '.join(names)}"
            )
        return names[key]

    @property
    def parents(self) -> tuple[int, ...]:
        return parents_from_chains(self.chains, self.joints_num)

    @property
    def feature_slices(self) -> dict[str, slice]:
        """docs/data.md#feature-vector feature blocks: root_rot_vel, root_lin_vel, root_y, ric, rot6d, local_vel, foot_contact."""
        j = self.joints_num
        r = 4 + 3 * (j - 1)
        s = r + 6 * (j - 1)
        v = s + 3 * j
        return {
            "root_rot_vel": slice(0, 1),
            "root_lin_vel": slice(1, 3),
            "root_y": slice(3, 4),
            "ric": slice(4, r),
            "rot6d": slice(r, s),
            "local_vel": slice(s, v),
            "foot_contact": slice(v, v + 4),
        }

    @property
    def target_offsets(self) -> np.ndarray | None:
        """(J, 3) target skeleton offsets = raw direction x bone length, or None when unknown."""
        if self.target_bone_lengths is None:
            return None
        lengths = np.concatenate([[0.0], self.target_bone_lengths]).astype(np.float32)
        return self.raw_offsets * lengths[:, None]


DATASETS: dict[str, DatasetSpec] = {
    "t2m": DatasetSpec(
        name="t2m",
        joints_num=22,
        dim_pose=263,
        fps=20.0,
        chains=T2M_CHAINS,
        raw_offsets=T2M_RAW_OFFSETS,
        joint_names=T2M_JOINT_NAMES,
        face_joint_idx=(2, 1, 17, 16),
        fid_l=(7, 10),
        fid_r=(8, 11),
        l_idx1=5,
        l_idx2=8,
        feet_thre=0.002,
        min_motion_length=40,
        plot_radius=4.0,
        mirror_pairs=T2M_MIRROR_PAIRS,
        data_folder="HumanML3D",
        target_bone_lengths=T2M_TARGET_BONE_LENGTHS,
    ),
    # KIT-ML units are millimetres; its target skeleton (example 03950_gt) is not public here, so by default
    # clips keep their own bone lengths unless a target is given.
    "kit": DatasetSpec(
        name="kit",
        joints_num=21,
        dim_pose=251,
        fps=12.5,
        chains=KIT_CHAINS,
        raw_offsets=KIT_RAW_OFFSETS,
        joint_names=KIT_JOINT_NAMES,
        face_joint_idx=(11, 16, 5, 8),
        fid_l=(19, 20),
        fid_r=(14, 15),
        l_idx1=17,
        l_idx2=18,
        feet_thre=0.05,
        min_motion_length=24,
        plot_radius=240.0 * 8,
        mirror_pairs=KIT_MIRROR_PAIRS,
        data_folder="KIT-ML",
        joint_aliases=KIT_JOINT_ALIASES,
    ),
}

# Names the official option files use for the same datasets.
_ALIASES = {"humanml3d": "t2m", "humanml": "t2m", "kit-ml": "kit", "kitml": "kit"}


def get_dataset_spec(name: str) -> DatasetSpec:
    """Look up a dataset by its ``--dataset_name`` (``t2m``/``kit``; official aliases accepted)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset_name {name!r}: use one of {sorted(DATASETS)} (t2m = HumanML3D, kit = KIT-ML)"
        )
    return DATASETS[key]


def spec_from_feature_dim(dim: int) -> DatasetSpec:
    """The dataset whose feature vectors have ``dim`` entries (263 -> t2m, 251 -> kit)."""
    for spec in DATASETS.values():
        if spec.dim_pose == dim:
            return spec
    dims = {s.name: s.dim_pose for s in DATASETS.values()}
    raise ValueError(f"feature dimension {dim} matches no dataset {dims}")


def spec_from_joint_count(joints: int) -> DatasetSpec:
    """The dataset whose skeletons have ``joints`` joints (22 -> t2m, 21 -> kit)."""
    for spec in DATASETS.values():
        if spec.joints_num == joints:
            return spec
    counts = {s.name: s.joints_num for s in DATASETS.values()}
    raise ValueError(f"joint count {joints} matches no dataset {counts}")
