"""Joint positions -> BVH, solved analytically (no iterative IK), vectorised over frames.

For every joint, its global rotation is found in one pass down the hierarchy:

* several children (pelvis, upper spine): the rotation that best maps the rest child offsets onto the
  child directions (Kabsch / Wahba fit of unit vectors, one 3x3 SVD per frame);
* one child: the shortest swing that takes the bone, as carried by the parent, onto its target direction;
  for limbs (upper legs, knees, upper arms) the twist about the bone is then turned so that the limb plane
  (e.g. thigh and shin) matches the rest pose's hinge axis; the correction fades out smoothly as the limb
  straightens, where the plane is undefined, so nothing flips;
* no child (End Site): no rotation of its own.

Local rotations ``parent⁻¹ ∘ global`` are written as ``Zrotation Yrotation Xrotation`` Euler angles, unwrapped
over time. ``offsets="template"`` retargets onto the official template skeleton (docs/export.md#joints-to-bvh; what the official
export does); ``offsets="motion"`` uses the motion's own bone lengths, so FK of the file reproduces the input;
``offsets="tpose"`` keeps the template's (t2m) or the motion's (kit) bone lengths on an exact T-pose rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from utils.cleanup import cleanup_motion
from utils.motion import check_bones, check_joints
from utils.quaternion import matrix_to_quat, qbetween, qinv, qmul, qrot, quat_from_axis_angle, quat_to_euler
from utils.skeleton import DatasetSpec
from visualization.bvh import POSITION_CHANNELS, BvhMotion, continuous_euler, forward_kinematics, write_bvh

if TYPE_CHECKING:
    import argparse

    from visualization.convert import Motion

logger = logging.getLogger(__name__)

OffsetsMode = Literal["motion", "template", "tpose"]
ROT_CHANNELS = ("Zrotation", "Yrotation", "Xrotation")  # order "zyx": R = Rz Ry Rx (official template)

# docs/export.md#joints-to-bvh: the official template (visualization/data/template.bvh), BVH joint order.
T2M_BVH_NAMES = (
    "Hips",
    "LeftUpLeg",
    "LeftLeg",
    "LeftFoot",
    "LeftToe",
    "RightUpLeg",
    "RightLeg",
    "RightFoot",
    "RightToe",
    "Spine",
    "Spine1",
    "Spine2",
    "Neck",
    "Head",
    "LeftShoulder",
    "LeftArm",
    "LeftForeArm",
    "LeftHand",
    "RightShoulder",
    "RightArm",
    "RightForeArm",
    "RightHand",
)
T2M_BVH_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 12, 11, 14, 15, 16, 11, 18, 19, 20)
T2M_TEMPLATE_OFFSETS = np.array(
    [
        [-0.001795, -0.223333, 0.028219],
        [0.069520, -0.091406, -0.006815],
        [0.034277, -0.375199, -0.004496],
        [-0.013596, -0.397961, -0.043693],
        [0.026358, -0.055791, 0.119288],
        [-0.067670, -0.090522, -0.004320],
        [-0.038290, -0.382569, -0.008850],
        [0.015774, -0.398415, -0.042312],
        [-0.025372, -0.048144, 0.123348],
        [-0.002533, 0.108963, -0.026696],
        [0.005487, 0.135180, 0.001092],
        [0.001457, 0.052922, 0.025425],
        [-0.002778, 0.213870, -0.042857],
        [0.005152, 0.064970, 0.051349],
        [0.078845, 0.121749, -0.034090],
        [0.090977, 0.030469, -0.008868],
        [0.259612, -0.012772, -0.027456],
        [0.249234, 0.008986, -0.001171],
        [-0.081759, 0.118833, -0.038615],
        [-0.096012, 0.032551, -0.009143],
        [-0.253742, -0.013329, -0.021401],
        [-0.255298, 0.007772, -0.005559],
    ]
)
# BVH joint k is SMPL joint T2M_SMPL_OF_BVH[k] (official re_order).
T2M_SMPL_OF_BVH = (0, 1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12, 15, 13, 16, 18, 20, 14, 17, 19, 21)

# Limb hinge axes in the rest pose (body facing +Z, left = +X), keyed by dataset joint index:
# thighs bend with the shin going back (+X), shins carry the foot forward (-X), upper arms (T-pose) bend with the
# forearm going forward (left -Y, right +Y).
_HINGES = {
    "t2m": {1: (1, 0, 0), 2: (1, 0, 0), 4: (-1, 0, 0), 5: (-1, 0, 0), 16: (0, -1, 0), 17: (0, 1, 0)},
    "kit": {11: (1, 0, 0), 16: (1, 0, 0), 12: (-1, 0, 0), 17: (-1, 0, 0), 5: (0, -1, 0), 8: (0, 1, 0)},
}
# T-pose rest (what Mixamo / Unity importers expect): the dataset's axis-aligned rest directions, with the arm
# bones (raw directions hang down) turned out sideways, left = +X; keyed by dataset joint index.
_TPOSE_ARMS = {
    "t2m": {16: 1.0, 18: 1.0, 20: 1.0, 17: -1.0, 19: -1.0, 21: -1.0},
    "kit": {6: 1.0, 7: 1.0, 9: -1.0, 10: -1.0},
}
_STRAIGHT_SIN = np.sin(np.deg2rad(30.0))  # limb bends above 30 deg get the full plane twist, below it fades
_TWIST_SIGMA = 4  # frames: reach of the twist fill-in through straight-limb poses
_TWIST_PRIOR = 0.05  # weight of the swing-only twist in that fill-in


@dataclass(frozen=True)
class BvhRig:
    """How a dataset's joints map onto a BVH hierarchy (all arrays in BVH joint order)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    source_index: tuple[int, ...]  # BVH joint k is dataset joint source_index[k]
    rest_dirs: np.ndarray  # (J, 3) unit rest direction of bone parent -> k (row 0 unused)
    template_offsets: np.ndarray | None  # (J, 3) official template offsets, None when there is none
    hinges: dict[int, np.ndarray] = field(default_factory=dict)  # BVH joint -> rest hinge axis (3,)

    @property
    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in self.names]
        for j, p in enumerate(self.parents):
            if p >= 0:
                kids[p].append(j)
        return kids

    @property
    def bvh_index(self) -> np.ndarray:
        """Inverse of ``source_index``: dataset joint i is BVH joint bvh_index[i]."""
        return np.argsort(np.asarray(self.source_index))


def _depth_first(parents: tuple[int, ...], chains: tuple[tuple[int, ...], ...]) -> list[int]:
    """Depth-first joint order from the root, children in order of first appearance in the chains."""
    seen: list[int] = []
    for chain in chains:
        for j in chain:
            if j not in seen:
                seen.append(j)
    kids = {j: [c for c in seen if parents[c] == j] for j in seen}
    order: list[int] = []
    stack = [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(kids[j]))
    return order


def rig_for(spec: DatasetSpec) -> BvhRig:
    """The BVH rig of a dataset: the official template for t2m, a hierarchy built from the chains for kit."""
    if spec.name == "t2m":
        order = list(T2M_SMPL_OF_BVH)
        names, parents, template = T2M_BVH_NAMES, T2M_BVH_PARENTS, T2M_TEMPLATE_OFFSETS
        dirs = T2M_TEMPLATE_OFFSETS
    else:
        order = _depth_first(spec.parents, spec.chains)
        pos = {j: k for k, j in enumerate(order)}
        names = tuple(spec.joint_names[j] for j in order)
        parents = tuple(-1 if spec.parents[j] < 0 else pos[spec.parents[j]] for j in order)
        template, dirs = None, spec.raw_offsets[order].astype(np.float64)
    norms = np.linalg.norm(dirs, axis=-1, keepdims=True)
    rest_dirs = np.divide(dirs, norms, out=np.zeros_like(dirs, dtype=np.float64), where=norms > 0)
    pos = {j: k for k, j in enumerate(order)}
    hinges = {pos[j]: np.asarray(axis, dtype=np.float64) for j, axis in _HINGES.get(spec.name, {}).items()}
    return BvhRig(tuple(names), tuple(parents), tuple(order), rest_dirs, template, hinges)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def fit_rotation(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation matrices R (T, 3, 3) minimising sum_k |R rest_k - target_k|² (Kabsch with reflection guard).

    rest: (K, 3) unit vectors, target: (T, K, 3) unit vectors, K >= 2 non-parallel.
    """
    h = np.einsum("ki,tkj->tij", rest, target)  # (T, 3, 3) sum_k rest_k target_k^T
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.transpose(0, 2, 1) @ u.transpose(0, 2, 1)))
    fix = np.ones((h.shape[0], 3))
    fix[:, 2] = np.where(d == 0, 1.0, d)
    return (vt.transpose(0, 2, 1) * fix[:, None, :]) @ u.transpose(0, 2, 1)


def motion_offsets(targets: np.ndarray, rig: BvhRig) -> np.ndarray:
    """Rest offsets (J, 3) with the motion's own geometry, oriented like the rig's rest pose.

    targets: (T, J, 3) in BVH order. One-child bones: rest direction x mean bone length. Children of a joint
    with several children: the children's mean configuration in the frame that best aligns it with the rest
    directions (exact when the input keeps that configuration rigid, as dataset skeletons do).
    """
    offsets = np.zeros((len(rig.names), 3))
    offsets[0] = targets[0, 0]
    for j, kids in enumerate(rig.children):
        if not kids:
            continue
        vec = targets[:, kids] - targets[:, j : j + 1]  # (T, K, 3)
        if len(kids) == 1:
            offsets[kids[0]] = rig.rest_dirs[kids[0]] * np.linalg.norm(vec, axis=-1).mean()
        else:
            rot = fit_rotation(rig.rest_dirs[kids], _unit(vec))  # (T, 3, 3)
            offsets[kids] = np.einsum("tji,tkj->tki", rot, vec).mean(axis=0)  # R^T vec, averaged over time
    return offsets


def tpose_offsets(targets: np.ndarray, rig: BvhRig, spec: DatasetSpec) -> np.ndarray:
    """Rest offsets (J, 3), BVH order, of a T-pose: every limb / spine bone axis-aligned (arms out sideways, legs
    down, feet forward) with the template's (else the motion's) lengths; where several bones leave one joint
    (pelvis, chest) the template's (motion's) configuration is kept."""
    bones = rig.template_offsets if rig.template_offsets is not None else motion_offsets(targets, rig)
    dirs = spec.raw_offsets.astype(np.float64).copy()
    for j, side in _TPOSE_ARMS.get(spec.name, {}).items():
        dirs[j] = (side, 0.0, 0.0)
    dirs = dirs[list(rig.source_index)]
    kids = rig.children
    chain = [j for j, p in enumerate(rig.parents) if p >= 0 and len(kids[p]) == 1]
    out = bones.copy()
    out[chain] = dirs[chain] * np.linalg.norm(bones[chain], axis=-1, keepdims=True)
    return out


def solve_rotations(targets: np.ndarray, offsets: np.ndarray, rig: BvhRig) -> np.ndarray:
    """Global joint rotations (T, J, 4) that point every bone of ``offsets`` at ``targets`` (T, J, 3), BVH order."""
    num_frames, num_joints = targets.shape[:2]
    kids = rig.children
    glob = np.zeros((num_frames, num_joints, 4))
    identity = np.broadcast_to(np.array([1.0, 0.0, 0.0, 0.0]), (num_frames, 4))
    for j in range(num_joints):
        parent = glob[:, rig.parents[j]] if rig.parents[j] >= 0 else identity
        if not kids[j]:
            glob[:, j] = parent
        elif len(kids[j]) > 1:
            rest = _unit(offsets[kids[j]])
            glob[:, j] = matrix_to_quat(fit_rotation(rest, _unit(targets[:, kids[j]] - targets[:, j : j + 1])))
        else:
            c = kids[j][0]
            bone = targets[:, c] - targets[:, j]
            carried = qrot(parent, np.broadcast_to(offsets[c], bone.shape))
            q = qmul(qbetween(carried, bone), parent)
            if j in rig.hinges and len(kids[c]) == 1:
                q = _hinge_twist(q, bone, targets[:, kids[c][0]] - targets[:, c], offsets[c], rig.hinges[j])
            glob[:, j] = q
    return glob


def _hinge_twist(
    q: np.ndarray, bone: np.ndarray, next_bone: np.ndarray, rest_bone: np.ndarray, rest_axis: np.ndarray
) -> np.ndarray:
    """Turn q (T, 4) about ``bone`` so the rest hinge axis lands on the limb plane normal ``bone x next_bone``.

    The plane is only trusted where the limb is bent: its weight is a smoothstep of the bend's sine (1 beyond
    30 deg). Where the limb is nearly straight the twist is taken from a Gaussian-weighted circular average of the
    trusted neighbouring frames (sigma 4 frames, with a weak pull towards the swing-only twist when no frame
    nearby is bent), so the twist stays continuous through straight poses. bone, next_bone: (T, 3).
    """
    b = _unit(bone)
    axis = rest_axis - np.dot(rest_axis, rest_bone) / np.dot(rest_bone, rest_bone) * rest_bone
    predicted = qrot(q, np.broadcast_to(_unit(axis), bone.shape))
    normal = np.cross(b, _unit(next_bone))
    sin_bend = np.linalg.norm(normal, axis=-1)
    normal = normal / np.maximum(sin_bend, 1e-12)[:, None]
    angle = np.arctan2(np.einsum("ti,ti->t", np.cross(predicted, normal), b), np.einsum("ti,ti->t", predicted, normal))
    s = np.clip(sin_bend / _STRAIGHT_SIN, 0.0, 1.0)
    weight = s * s * (3.0 - 2.0 * s)
    plane = weight * np.exp(1j * angle)
    radius = 3 * _TWIST_SIGMA
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / _TWIST_SIGMA) ** 2)
    pad = lambda x: np.pad(x, radius, mode="edge")  # noqa: E731
    near = (np.convolve(pad(plane), kernel, "valid") + _TWIST_PRIOR) / (
        np.convolve(pad(weight), kernel, "valid") + _TWIST_PRIOR
    )
    blended = plane + (1.0 - weight) * near / np.maximum(np.abs(near), 1e-12)
    return qmul(quat_from_axis_angle(b, np.angle(blended)), q)


def joints_to_bvh(
    joints: np.ndarray, spec: DatasetSpec | None = None, *, offsets: OffsetsMode | None = None, cleanup: bool = False
) -> BvhMotion:
    """Joint positions (T, J, 3) in dataset order (SMPL order for t2m) -> :class:`BvhMotion`.

    offsets: ``"template"`` (t2m default; the official template skeleton, bone lengths retargeted),
    ``"motion"`` (kit default; the motion's own mean bone lengths, exact positions when they do not change over
    time, as in mocap) or ``"tpose"`` (a T-pose rest).
    ``cleanup`` first runs :func:`utils.cleanup.cleanup_motion` (less jitter and foot skating, feet locked during
    contacts). Frame time is ``1 / spec.fps``.
    """
    spec = check_joints(joints, spec, min_frames=2)
    check_bones(joints, spec)
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3:
        raise ValueError(f"joints: expected one motion of shape (T, J, 3), got {joints.shape}")
    rig = rig_for(spec)
    mode = offsets or ("template" if rig.template_offsets is not None else "motion")
    if mode not in ("motion", "template", "tpose"):
        raise ValueError(f"offsets must be 'motion', 'template' or 'tpose', got {mode!r}")
    if mode == "template" and rig.template_offsets is None:
        raise ValueError(f"dataset {spec.name!r} has no BVH template skeleton; use offsets='motion'")
    if cleanup:
        joints = cleanup_motion(joints, spec)
    targets = joints[:, list(rig.source_index)]
    if mode == "tpose":
        bone_offsets = tpose_offsets(targets, rig, spec)
    else:
        bone_offsets = motion_offsets(targets, rig) if mode == "motion" else rig.template_offsets.copy()
    glob = solve_rotations(targets, bone_offsets, rig)
    parent_glob = np.concatenate(
        [np.broadcast_to([1.0, 0, 0, 0], glob[:, :1].shape), glob[:, list(rig.parents[1:])]], axis=1
    )
    local = qmul(qinv(parent_glob), glob)
    euler = continuous_euler(np.rad2deg(quat_to_euler(local, "zyx")))
    positions = np.repeat(bone_offsets[None], joints.shape[0], axis=0)
    positions[:, 0] = targets[:, 0]
    channels = tuple((POSITION_CHANNELS + ROT_CHANNELS) if j == 0 else ROT_CHANNELS for j in range(len(rig.names)))
    end_sites = {j: np.zeros(3) for j, k in enumerate(rig.children) if not k}
    return BvhMotion(rig.names, rig.parents, bone_offsets, channels, euler, positions, 1.0 / spec.fps, end_sites)


def bvh_to_joints(motion: BvhMotion, spec: DatasetSpec) -> np.ndarray:
    """Global joint positions (T, J, 3) of a BVH made by :func:`joints_to_bvh`, back in dataset joint order."""
    rig = rig_for(spec)
    if motion.names != rig.names:
        raise ValueError(f"BVH joints {motion.names[:4]}... are not the {spec.name} rig {rig.names[:4]}...")
    wrong = [
        f"{n} under {motion.names[p] if p >= 0 else 'nothing'} (expected {rig.names[q] if q >= 0 else 'nothing'})"
        for n, p, q in zip(rig.names, motion.parents, rig.parents)
        if p != q
    ]
    if wrong:
        raise ValueError(f"BVH joints have the {spec.name} rig's names but another hierarchy: {wrong[:3]}")
    return forward_kinematics(motion)[0][:, rig.bvh_index]


def save_bvh(
    joints: np.ndarray,
    path: str | os.PathLike[str],
    spec: DatasetSpec | None = None,
    *,
    offsets: OffsetsMode | None = None,
    cleanup: bool = False,
) -> Path:
    """:func:`joints_to_bvh` then an atomic write to ``path``; returns the path."""
    motion = joints_to_bvh(joints, spec, offsets=offsets, cleanup=cleanup)
    return write_bvh(path, motion)


# ----------------------------------------------------------------------------------------------------------------
# visualization.convert hooks (registered there by extension)


def write_motion_bvh(motion: Motion, path: Path, args: argparse.Namespace) -> None:
    """convert writer: a Motion (features or joints) -> BVH. Option: ``--offsets`` (the clean-up, ``--cleanup``,
    is applied by visualization.convert before any writer)."""
    save_bvh(motion.as_joints(), path, motion.spec, offsets=getattr(args, "offsets", None))


def read_motion_bvh(path: Path, spec: DatasetSpec | None, args: argparse.Namespace) -> Motion:
    """convert reader: a BVH written by this module (t2m template rig or the kit rig) -> joints Motion."""
    from utils.skeleton import DATASETS
    from visualization.bvh import read_bvh
    from visualization.convert import motion_from_array

    motion = read_bvh(path)
    candidates = [spec] if spec is not None else list(DATASETS.values())
    for candidate in candidates:
        if motion.names == rig_for(candidate).names:
            try:
                joints = bvh_to_joints(motion, candidate).astype(np.float32)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            return motion_from_array(joints, candidate, str(path))
    rigs = {c.name: rig_for(c).names[:3] for c in candidates}
    raise ValueError(
        f"{path}: BVH joints {motion.names[:3]}... match no rig of this project {rigs}; "
        "only BVH files written by visualization.joints2bvh can be read back as joints"
    )
