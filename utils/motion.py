"""The motion representation: joints -> features (official ``process_file``, docs/data.md#from-joints-to-features), features -> joints
(``recover_from_ric`` / ``recover_from_rot``, docs/data.md#from-features-to-joints), mirroring and input validation.

Feature layout per frame (docs/data.md#feature-vector), ``J`` joints, ``D = 4 + 3(J-1) + 6(J-1) + 3J + 4``:
``[root_rot_vel (1), root_lin_vel xz (2), root_y (1), ric (3(J-1)), rot6d (6(J-1)), local_vel (3J), contacts (4)]``.
Everything is batched over leading dimensions, keeps device/dtype, and accepts NumPy arrays (returns NumPy).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from utils.kinematics import (
    bone_offsets,
    facing_quat,
    forward_kinematics,
    forward_kinematics_cont6d,
    inverse_kinematics,
)
from utils.quaternion import numpy_io, qinv, qmul, qrot, quat_to_cont6d
from utils.skeleton import DatasetSpec, spec_from_feature_dim, spec_from_joint_count

ArrayLike = Tensor | np.ndarray

# IK/FK live in utils.kinematics; re-exported so callers can take the whole representation from one module.
__all__ = [
    "bone_offsets",
    "check_bones",
    "check_features",
    "check_joints",
    "extract_features",
    "extract_features_with_positions",
    "facing_quat",
    "forward_kinematics",
    "forward_kinematics_cont6d",
    "inverse_kinematics",
    "mirror_joints",
    "recover_from_ric",
    "recover_from_rot",
    "recover_root_rot_pos",
    "uniform_skeleton",
]


# ----------------------------------------------------------------------------------------------------------------
# Validation


def _shape_and_finite(arr: ArrayLike) -> tuple[tuple[int, ...], bool]:
    if isinstance(arr, Tensor):
        return tuple(arr.shape), bool(torch.isfinite(arr).all())
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"expected a numeric array, got dtype {arr.dtype}")
    return arr.shape, bool(np.isfinite(arr).all())


def check_joints(
    arr: ArrayLike, spec: DatasetSpec | None = None, name: str = "joints", min_frames: int = 3
) -> DatasetSpec:
    """Validate joint positions (..., T, J, 3) and return their dataset (inferred from J unless given)."""
    shape, is_finite = _shape_and_finite(arr)
    if len(shape) < 3 or shape[-1] != 3:
        raise ValueError(f"{name}: expected joint positions of shape (T, J, 3), got {shape}")
    if spec is None:
        try:
            spec = spec_from_joint_count(shape[-2])
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}; expected (T, 22, 3) for t2m or (T, 21, 3) for kit") from None
    elif shape[-2] != spec.joints_num:
        raise ValueError(f"{name}: {spec.name} has {spec.joints_num} joints, got shape {shape}")
    if shape[-3] < min_frames:
        raise ValueError(f"{name}: need at least {min_frames} frames, got {shape[-3]}")
    if not is_finite:
        raise ValueError(f"{name}: contains NaN or infinite values")
    return spec


MIN_BONE = 1e-5  # a joint this close to its parent is a collapsed skeleton (IK would divide by zero)


def check_bones(joints: ArrayLike, spec: DatasetSpec, name: str = "joints") -> None:
    """Every joint of (T, J, 3) positions must sit away from its parent in every frame (no collapsed skeleton)."""
    arr = np.asarray(joints, dtype=np.float64)
    parents = np.array(spec.parents[1:])
    lengths = np.linalg.norm(arr[..., 1:, :] - arr[..., parents, :], axis=-1)  # (T, J-1)
    if (lengths < MIN_BONE).any():
        t, b = np.argwhere(lengths < MIN_BONE)[0][-2:]
        raise ValueError(
            f"{name}: joint {spec.joint_names[b + 1]!r} coincides with its parent "
            f"{spec.joint_names[parents[b]]!r} at frame {t} (collapsed or all-zero skeleton); "
            "expected joint positions of a body"
        )


def check_features(
    arr: ArrayLike, spec: DatasetSpec | None = None, name: str = "features", min_frames: int = 3
) -> DatasetSpec:
    """Validate feature vectors (..., T, D) and return their dataset (inferred from D unless given)."""
    shape, is_finite = _shape_and_finite(arr)
    if len(shape) < 2:
        raise ValueError(f"{name}: expected features of shape (T, D), got {shape}")
    if spec is None:
        try:
            spec = spec_from_feature_dim(shape[-1])
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}; expected (T, 263) for t2m or (T, 251) for kit") from None
    elif shape[-1] != spec.dim_pose:
        raise ValueError(f"{name}: {spec.name} features have {spec.dim_pose} dims, got shape {shape}")
    if shape[-2] < min_frames:
        raise ValueError(f"{name}: need at least {min_frames} frames, got {shape[-2]}")
    if not is_finite:
        raise ValueError(f"{name}: contains NaN or infinite values")
    return spec


# ----------------------------------------------------------------------------------------------------------------
# Joints -> features


def _xz(x: Tensor) -> Tensor:
    return x * x.new_tensor([1.0, 0.0, 1.0])


@numpy_io
def uniform_skeleton(joints: Tensor, spec: DatasetSpec, target_offsets: ArrayLike) -> Tensor:
    """Retarget a motion to the target bone lengths, keeping every bone direction (docs/data.md#from-joints-to-features step 1).

    joints: (..., T, J, 3), target_offsets: (J, 3) -> (..., T, J, 3). Root positions are scaled by
    ``tgt_leg / src_leg``, the lower-leg lengths (``l_idx1``, ``l_idx2``) measured on frame 0.
    """
    target = torch.as_tensor(target_offsets, dtype=joints.dtype, device=joints.device)
    if target.shape != (spec.joints_num, 3):
        raise ValueError(f"target_offsets must be ({spec.joints_num}, 3) for {spec.name}, got {tuple(target.shape)}")
    source = bone_offsets(joints[..., 0, :, :], spec)  # (..., J, 3)

    def leg(offsets: Tensor) -> Tensor:
        return offsets[..., spec.l_idx1, :].abs().amax(-1) + offsets[..., spec.l_idx2, :].abs().amax(-1)

    scale = leg(target) / leg(source)  # (...)
    quats = inverse_kinematics(joints, spec, smooth_forward=False)
    return forward_kinematics(quats, joints[..., 0, :] * scale[..., None, None], target, spec)


@numpy_io
def extract_features_with_positions(
    joints: Tensor,
    spec: DatasetSpec | None = None,
    feet_thre: float | None = None,
    target_offsets: ArrayLike | None = None,
    is_uniform: bool = True,
) -> tuple[Tensor, Tensor]:
    """Official ``process_file``: joint positions -> (features, global_positions).

    joints: (..., T, J, 3) -> features (..., T-1, D), global_positions (..., T, J, 3) (retargeted, on the floor,
    frame-0 root at the XZ origin, frame 0 facing +Z). ``target_offsets`` defaults to ``spec.target_offsets``
    (the HumanML3D target skeleton); when that is None (KIT) or ``is_uniform`` is False the source bone lengths
    are kept. ``feet_thre`` defaults to ``spec.feet_thre``.
    """
    spec = check_joints(joints, spec)
    feet_thre = spec.feet_thre if feet_thre is None else feet_thre
    if target_offsets is None:
        target_offsets = spec.target_offsets
    positions = joints
    if is_uniform and target_offsets is not None:
        positions = uniform_skeleton(positions, spec, target_offsets)

    # Floor at y = 0, frame-0 root over the origin, frame 0 facing +Z (process_file's own face-index unpacking).
    floor = positions[..., 1].amin(dim=(-2, -1))
    positions = positions - floor[..., None, None, None] * positions.new_tensor([0.0, 1.0, 0.0])
    positions = positions - _xz(positions[..., :1, :1, :])
    init_rot = facing_quat(positions[..., :1, :, :], spec, is_ik_unpacking=False)  # (..., 1, 4)
    global_positions = qrot(init_rot[..., None, :], positions)

    # Foot contacts: squared per-frame displacement below the threshold (no height test).
    feet = global_positions[..., (*spec.fid_l, *spec.fid_r), :]
    contacts = (((feet[..., 1:, :, :] - feet[..., :-1, :, :]) ** 2).sum(-1) < feet_thre).to(joints.dtype)

    quats = inverse_kinematics(global_positions, spec, smooth_forward=True)  # (..., T, J, 4)
    cont6d = quat_to_cont6d(quats)
    r_rot = quats[..., 0, :]  # world -> facing
    root = global_positions[..., 0, :]
    # QUIRK(reference): root velocity uses the frame-(t+1) facing, local_vel the frame-t facing (docs/data.md#from-joints-to-features).
    root_vel = qrot(r_rot[..., 1:, :], root[..., 1:, :] - root[..., :-1, :])
    rot_vel = qmul(r_rot[..., 1:, :], qinv(r_rot[..., :-1, :]))
    ric = qrot(r_rot[..., :, None, :], global_positions - _xz(root[..., None, :]))
    local_vel = qrot(r_rot[..., :-1, None, :], global_positions[..., 1:, :, :] - global_positions[..., :-1, :, :])

    features = torch.cat(
        (
            torch.asin(rot_vel[..., 2:3]),
            root_vel[..., [0, 2]],
            ric[..., :-1, 0, 1:2],
            ric[..., :-1, 1:, :].flatten(-2),
            cont6d[..., :-1, 1:, :].flatten(-2),
            local_vel.flatten(-2),
            contacts,
        ),
        dim=-1,
    )
    return features, global_positions


@numpy_io
def extract_features(
    joints: Tensor,
    spec: DatasetSpec | None = None,
    feet_thre: float | None = None,
    target_offsets: ArrayLike | None = None,
    is_uniform: bool = True,
) -> Tensor:
    """Official ``process_file`` features. joints: (..., T, J, 3) -> (..., T-1, D); see
    :func:`extract_features_with_positions`."""
    return extract_features_with_positions(joints, spec, feet_thre, target_offsets, is_uniform)[0]


# ----------------------------------------------------------------------------------------------------------------
# Features -> joints


@numpy_io
def recover_root_rot_pos(features: Tensor) -> tuple[Tensor, Tensor]:
    """Root facing rotation and position from the root features (docs/data.md#from-features-to-joints).

    features: (..., T, D) -> r_rot_quat (..., T, 4) (world -> facing yaw), r_pos (..., T, 3).
    Yaw half-angle ``φ_t = Σ_{i<t} f[i, 0]``; position = cumulative sum of the previous rows' facing-frame XZ
    velocities rotated back to world, with y overwritten by ``f[t, 3]``.
    """
    rot_vel = features[..., 0]
    half_yaw = torch.cumsum(torch.cat((torch.zeros_like(rot_vel[..., :1]), rot_vel[..., :-1]), dim=-1), dim=-1)
    zero = torch.zeros_like(half_yaw)
    r_rot_quat = torch.stack((torch.cos(half_yaw), zero, torch.sin(half_yaw), zero), dim=-1)
    step = torch.stack((features[..., :-1, 1], zero[..., 1:], features[..., :-1, 2]), dim=-1)
    step = torch.cat((torch.zeros_like(step[..., :1, :]), step), dim=-2)
    r_pos = torch.cumsum(qrot(qinv(r_rot_quat), step), dim=-2)
    r_pos = torch.cat((r_pos[..., :1], features[..., 3:4], r_pos[..., 2:]), dim=-1)
    return r_rot_quat, r_pos


@numpy_io
def recover_from_ric(features: Tensor, joints_num: int | None = None) -> Tensor:
    """Global joint positions from the rotation-invariant coordinates (docs/data.md#from-features-to-joints).

    features: (..., T, D) -> (..., T, J, 3). ``joints_num`` defaults to the dataset matching ``D``.
    """
    if joints_num is None:
        joints_num = spec_from_feature_dim(features.shape[-1]).joints_num
    if features.shape[-1] < 4 + 3 * (joints_num - 1):
        raise ValueError(f"features with {features.shape[-1]} dims are too short for {joints_num} joints")
    r_rot_quat, r_pos = recover_root_rot_pos(features)
    ric = features[..., 4 : 4 + 3 * (joints_num - 1)].unflatten(-1, (joints_num - 1, 3))
    positions = qrot(qinv(r_rot_quat)[..., None, :], ric) + _xz(r_pos[..., None, :])
    return torch.cat((r_pos[..., None, :], positions), dim=-2)


@numpy_io
def recover_from_rot(features: Tensor, spec: DatasetSpec | None = None, offsets: ArrayLike | None = None) -> Tensor:
    """Global joint positions by forward kinematics of the 6D rotations on a skeleton (docs/data.md#from-features-to-joints).

    features: (..., T, D), offsets: (J, 3) (default ``spec.target_offsets``) -> (..., T, J, 3).
    """
    spec = spec or spec_from_feature_dim(features.shape[-1])
    if offsets is None:
        offsets = spec.target_offsets
    if offsets is None:
        raise ValueError(f"recover_from_rot needs skeleton offsets for {spec.name} (no default target skeleton)")
    r_rot_quat, r_pos = recover_root_rot_pos(features)
    rot6d = features[..., spec.feature_slices["rot6d"]].unflatten(-1, (spec.joints_num - 1, 6))
    cont6d = torch.cat((quat_to_cont6d(r_rot_quat)[..., None, :], rot6d), dim=-2)
    return forward_kinematics_cont6d(cont6d, r_pos, offsets, spec)


# ----------------------------------------------------------------------------------------------------------------
# Mirroring


@numpy_io
def mirror_joints(joints: Tensor, spec: DatasetSpec) -> Tensor:
    """Left/right mirror (docs/data.md#raw-pipeline): ``x -> -x`` and swap ``spec.mirror_pairs``. (..., J, 3) -> (..., J, 3)."""
    perm = list(range(spec.joints_num))
    for left, right in spec.mirror_pairs:
        perm[left], perm[right] = right, left
    return joints[..., perm, :] * joints.new_tensor([-1.0, 1.0, 1.0])
