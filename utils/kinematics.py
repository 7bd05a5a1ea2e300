"""Skeleton inverse / forward kinematics on the dataset's kinematic chains (docs/data.md#inverse-and-forward-kinematics).

Rotations are stored on the *child* joint of each bone: ``quats[..., c, :]`` rotates the rest-pose direction
``raw_offsets[c]`` (relative to the chain's accumulated rotation) onto the bone ``parent(c) -> c``; index 0 holds
the root (facing) rotation. All functions are batched over leading dimensions and loop over bones, never frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from utils.quaternion import cont6d_to_matrix, numpy_io, qbetween, qinv, qmul, qrot
from utils.skeleton import DatasetSpec


def _like(array: np.ndarray | Tensor, ref: Tensor) -> Tensor:
    return torch.as_tensor(array, dtype=ref.dtype, device=ref.device)


def gaussian_smooth(x: Tensor, sigma: float, dim: int = -2, truncate: float = 4.0) -> Tensor:
    """1-D Gaussian filter along ``dim`` with edge-replicating padding.

    Same result as ``scipy.ndimage.gaussian_filter1d(x, sigma, axis=dim, mode="nearest", truncate=truncate)``:
    kernel radius ``int(truncate * sigma + 0.5)``, weights ``exp(-k² / 2σ²)`` normalised to sum 1.
    x: (..., T, ...) -> same shape.
    """
    dim = dim % x.ndim
    radius = int(truncate * float(sigma) + 0.5)
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (k / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(dtype=x.dtype, device=x.device)
    T = x.shape[dim]
    idx = torch.arange(-radius, T + radius, device=x.device).clamp(0, T - 1)
    padded = x.index_select(dim, idx)  # (..., T + 2r, ...)
    windows = padded.unfold(dim, 2 * radius + 1, 1)  # (..., T, ..., 2r + 1)
    return windows @ kernel


@numpy_io
def bone_offsets(joints: Tensor, spec: DatasetSpec) -> Tensor:
    """Skeleton offsets of one pose: ``raw_offsets[j] * |joint_j - joint_parent(j)|`` (root row 0).

    joints: (..., J, 3) -> (..., J, 3).
    """
    parents = list(spec.parents)
    parents[0] = 0
    lengths = (joints - joints[..., parents, :]).norm(dim=-1, keepdim=True)
    return _like(spec.raw_offsets, joints) * lengths


def facing_quat(
    joints: Tensor, spec: DatasetSpec, smooth_forward: bool = False, is_ik_unpacking: bool = True, sigma: float = 20.0
) -> Tensor:
    """Per-frame yaw rotation taking the body's forward direction onto +Z. joints: (..., T, J, 3) -> (..., T, 4).

    The across vector (pointing to the body's right for t2m) is ``(j_b - j_a) + (j_c - j_e)`` for
    ``face_joint_idx = (a, b, c, e)`` and forward = ``Y × across``.
    QUIRK(reference): the IK (``is_ik_unpacking=True``) reads the face indices as (l_hip, r_hip, sdr_r, sdr_l)
    while process_file reads them as (r_hip, l_hip, sdr_r, sdr_l), so for the IK the hip term points the other
    way (docs/data.md#inverse-and-forward-kinematics). Kept: the dataset's features were made with it.
    """
    a, b, c, e = spec.face_joint_idx
    if is_ik_unpacking:
        across = (joints[..., b, :] - joints[..., a, :]) + (joints[..., c, :] - joints[..., e, :])
    else:
        across = (joints[..., a, :] - joints[..., b, :]) + (joints[..., c, :] - joints[..., e, :])
    across = across / across.norm(dim=-1, keepdim=True)
    up = joints.new_tensor([0.0, 1.0, 0.0]).expand_as(across)
    forward = torch.linalg.cross(up, across, dim=-1)
    if smooth_forward:
        forward = gaussian_smooth(forward, sigma, dim=-2)
    forward = forward / forward.norm(dim=-1, keepdim=True)
    return qbetween(forward, joints.new_tensor([0.0, 0.0, 1.0]).expand_as(forward))


@numpy_io
def inverse_kinematics(joints: Tensor, spec: DatasetSpec, smooth_forward: bool = False) -> Tensor:
    """Local joint rotations of a motion (the reference ``inverse_kinematics_np``).

    joints: (..., T, J, 3) -> quats (..., T, J, 4). Root = facing rotation (forward -> +Z), each child joint
    ``c`` stores ``R_chain⁻¹ ⊗ qbetween(raw_offsets[c], j_c - j_parent)``.
    QUIRK(reference), kept for identical features: the root rotation of frame 0 is forced to identity; every
    chain (also the arm chains that start at the spine) starts from the root rotation, so spine rotations are
    not propagated into the arms. ``smooth_forward`` Gaussian-filters the forward vector over time (σ = 20).
    """
    if joints.shape[-1] != 3 or joints.shape[-2] != spec.joints_num:
        raise ValueError(f"joints must be (..., T, {spec.joints_num}, 3) for {spec.name}, got {tuple(joints.shape)}")
    root = facing_quat(joints, spec, smooth_forward=smooth_forward, is_ik_unpacking=True)
    identity = root.new_tensor([1.0, 0.0, 0.0, 0.0])
    frame_idx = torch.arange(root.shape[-2], device=root.device)[:, None]
    root = torch.where(frame_idx == 0, identity, root)

    # All bones at once: world rotation g_c = qbetween(raw_c, bone_c); the chain's rotation before bone c is
    # the root at the chain start, else g_parent (the reference accumulates R ⊗ R_loc, equal to g up to rounding).
    children, parents, prev = [], [], []
    for chain in spec.chains:
        for k, (parent, child) in enumerate(zip(chain[:-1], chain[1:])):
            children.append(child)
            parents.append(parent)
            prev.append(0 if k == 0 else len(children) - 1)  # index into [root, g_children...]
    if sorted(children) != list(range(1, spec.joints_num)):
        raise ValueError(f"kinematic chains of {spec.name} do not cover all {spec.joints_num} joints exactly once")
    bones = joints[..., children, :] - joints[..., parents, :]
    bones = bones / bones.norm(dim=-1, keepdim=True)
    raw = _like(spec.raw_offsets, joints)[children]
    world = qbetween(raw.expand_as(bones), bones)  # (..., T, J-1, 4)
    chain_rot = torch.cat((root[..., None, :], world), dim=-2)[..., prev, :]
    local = qmul(qinv(chain_rot), world)
    order = [0] + [1 + children.index(j) for j in range(1, spec.joints_num)]
    return torch.cat((root[..., None, :], local), dim=-2)[..., order, :]


def _check_offsets(offsets: Tensor, spec: DatasetSpec) -> None:
    if offsets.shape[-2:] != (spec.joints_num, 3):
        raise ValueError(f"offsets must be (..., {spec.joints_num}, 3) for {spec.name}, got {tuple(offsets.shape)}")


@numpy_io
def forward_kinematics(
    quats: Tensor, root_pos: Tensor, offsets: Tensor | np.ndarray, spec: DatasetSpec, use_root_rotation: bool = True
) -> Tensor:
    """Joint positions from local rotations (the reference ``forward_kinematics``).

    quats: (..., T, J, 4), root_pos: (..., T, 3), offsets: (J, 3) or broadcastable (..., T, J, 3)
    -> (..., T, J, 3). Per chain ``R = quats[..., 0]`` (identity if not ``use_root_rotation``), then for each
    child ``R ← R ⊗ quats[c]`` and ``p_c = qrot(R, offset_c) + p_parent``.
    """
    offsets = _like(offsets, quats)
    _check_offsets(offsets, spec)
    offsets = offsets.expand(quats.shape[:-1] + (3,))
    positions: list[Tensor | None] = [None] * spec.joints_num
    positions[0] = root_pos.expand(quats.shape[:-2] + (3,))
    identity = quats.new_tensor([1.0, 0.0, 0.0, 0.0]).expand_as(quats[..., 0, :])
    for chain in spec.chains:
        rot = quats[..., 0, :] if use_root_rotation else identity
        for parent, child in zip(chain[:-1], chain[1:]):
            rot = qmul(rot, quats[..., child, :])
            positions[child] = qrot(rot, offsets[..., child, :]) + positions[parent]
    return torch.stack(positions, dim=-2)  # type: ignore[arg-type]


@numpy_io
def forward_kinematics_cont6d(
    cont6d: Tensor, root_pos: Tensor, offsets: Tensor | np.ndarray, spec: DatasetSpec, use_root_rotation: bool = True
) -> Tensor:
    """:func:`forward_kinematics` with 6D rotations. cont6d: (..., T, J, 6), root_pos: (..., T, 3) -> (..., T, J, 3)."""
    offsets = _like(offsets, cont6d)
    _check_offsets(offsets, spec)
    offsets = offsets.expand(cont6d.shape[:-1] + (3,))
    mats = cont6d_to_matrix(cont6d)  # (..., T, J, 3, 3)
    positions: list[Tensor | None] = [None] * spec.joints_num
    positions[0] = root_pos.expand(cont6d.shape[:-2] + (3,))
    identity = torch.eye(3, dtype=mats.dtype, device=mats.device).expand_as(mats[..., 0, :, :])
    for chain in spec.chains:
        rot = mats[..., 0, :, :] if use_root_rotation else identity
        for parent, child in zip(chain[:-1], chain[1:]):
            rot = rot @ mats[..., child, :, :]
            positions[child] = (rot @ offsets[..., child, :, None])[..., 0] + positions[parent]
    return torch.stack(positions, dim=-2)  # type: ignore[arg-type]
