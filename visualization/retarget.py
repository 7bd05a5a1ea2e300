"""Retarget this project's joints (t2m 22 / kit 21) onto any skeleton given as a BVH file, analytically.

The rig file gives the hierarchy, the OFFSETs and the rest pose (its first frame, or the zero pose when it has no
frames). Rig joints follow source joints by name (:mod:`visualization.rig_mapping`). Then, per frame:

* every *driven* rig joint gets a point on the source skeleton: mapped joints their source joint; rig joints in
  between two mapped ones (a spine of 4 where the source has 3, twist bones) a point along the source path
  between them, at the fraction of the rig's own rest length (so spines of any count bend smoothly);
* bone directions (not positions) are matched: the driven joints form a sub-rig with the rig's *world* rest
  offsets, solved by :func:`visualization.joints2bvh.solve_rotations` (one swing per bone from its rest
  orientation, a rigid fit where several bones leave one joint, limb-plane twist for thighs, shins and upper
  arms), giving world rotations relative to rest; so a T-pose or an A-pose rest is just its measured directions;
* joints that follow nothing (fingers, end joints, twist leaves) keep their rest local rotation;
* the root moves along the source path scaled per axis: horizontally by the leg-length ratio (rig hip-to-ankle
  rest length over the source's), vertically so that the knees bend as the source's (the file's root carries
  it, also when it is a floor-level joint above the hips); the feet are put on the source's footprints x the
  ratio by two-bone IK of thigh and shin (:func:`plant_feet`: the ankle on the source ankle, the toe on the
  source toe while it is planted, the rig's own hip spacing changed only in the air), so other proportions do
  not make the feet slide;
* the rig's axes (Y or Z up, any facing) and units (m, cm) are read off its rest pose: up = hips to head,
  left = right hip to left hip.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from utils.cleanup import detect_contacts, lock_offsets, two_bone_ik
from utils.motion import check_joints
from utils.physical import SKATE_HEIGHT, to_metres
from utils.quaternion import qbetween, qinv, qmul, qrot, quat_to_euler
from utils.skeleton import DatasetSpec, get_dataset_spec
from visualization.blender_check import export_with_blender, find_blender
from visualization.bvh import POSITION_CHANNELS, BvhMotion, continuous_euler, forward_kinematics, read_bvh, write_bvh
from visualization.joints2bvh import BvhRig, fit_rotation, solve_rotations
from visualization.rig_mapping import check_required, guess_mapping, read_mapping, source_index

if TYPE_CHECKING:
    import argparse

    from visualization.convert import Motion

logger = logging.getLogger(__name__)

_UP_FROM = ("head", "neck", "spine3", "spine2", "spine1")  # first one mapped gives the rig's up direction
_HINGE_BEND = {
    "left_hip": -1.0,
    "right_hip": -1.0,
    "left_knee": 1.0,
    "right_knee": 1.0,  # x forward
    "left_shoulder": 1.0,
    "right_shoulder": 1.0,
}
_HINGE_NEXT = {
    "left_hip": "left_knee",
    "right_hip": "right_knee",
    "left_knee": "left_ankle",
    "right_knee": "right_ankle",
    "left_shoulder": "left_elbow",
    "right_shoulder": "right_elbow",
}
_SNAP_COS = np.cos(np.deg2rad(25.0))  # rig axes this close to a file axis are snapped to it
_ROT = ("Zrotation", "Yrotation", "Xrotation")
_MAX_FOOT_PITCH = np.deg2rad(5.0)  # how far a planted rig foot may pitch to keep its ankle as high as the source's
_T2M = get_dataset_spec("t2m")  # the layout the clean-up's contact detection reads feet in
_FEET = ("left_ankle", "left_foot", "right_ankle", "right_foot")  # its order of the foot joints


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def rest_pose(rig: BvhMotion) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World positions (J, 3), world rotations (J, 4), local rotations (J, 4), local translations (J, 3) at rest."""
    if rig.num_frames:
        first = replace(rig, rotations=rig.rotations[:1], positions=rig.positions[:1])
    else:
        first = replace(rig, rotations=np.zeros((1, len(rig.names), 3)), positions=rig.offsets[None].copy())
    pos, rot = forward_kinematics(first)
    parents = np.array(rig.parents)
    parent_rot = np.where((parents >= 0)[:, None], rot[0, np.maximum(parents, 0)], [1.0, 0.0, 0.0, 0.0])
    return pos[0], rot[0], qmul(qinv(parent_rot), rot[0]), first.positions[0]


@dataclass(frozen=True)
class RetargetPlan:
    """How one rig follows one dataset's skeleton; everything that does not depend on the motion."""

    rig: BvhMotion
    spec: DatasetSpec
    source: str  # the rig's file name, for messages
    mapped: dict[int, int]  # rig joint -> dataset joint
    driven: tuple[int, ...]  # rig joints aimed at the source, hips first, in file order
    paths: tuple[tuple[int, ...], ...]  # per driven joint: dataset joints of the path its point lies on
    fractions: np.ndarray  # (Jd,) where along that path (0 = its first joint)
    sub: BvhRig  # the driven joints as a rig (parents into ``driven``)
    sub_offsets: np.ndarray  # (Jd, 3) world rest offsets of the driven joints
    basis: np.ndarray  # (3, 3) columns: the rig's left, up, forward in its file axes
    rest: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # see rest_pose
    leg_length: float  # rig hip-to-ankle rest length (its units)

    @property
    def hips(self) -> int:
        return self.driven[0]


def _chain_length(rest_pos: np.ndarray, parents: tuple[int, ...], top: int, bottom: int) -> np.ndarray:
    """Cumulative rest lengths from ``top`` down to every joint of the chain ending at ``bottom`` (joint -> length)."""
    chain = [bottom]
    while chain[-1] != top:
        chain.append(parents[chain[-1]])
    chain.reverse()
    steps = np.linalg.norm(np.diff(rest_pos[chain], axis=0), axis=-1)
    return dict(zip(chain, np.concatenate([[0.0], np.cumsum(steps)])))


def _source_path(spec: DatasetSpec, top: int, bottom: int) -> tuple[int, ...] | None:
    """Dataset joints from ``top`` down to ``bottom``, or None when ``bottom`` is not below ``top``."""
    parents = spec.parents
    path = [bottom]
    while path[-1] != top:
        if parents[path[-1]] < 0:
            return None
        path.append(parents[path[-1]])
    return tuple(reversed(path))


def _axis_snap(v: np.ndarray) -> np.ndarray:
    k = int(np.abs(v).argmax())
    if abs(v[k]) < _SNAP_COS:
        return v
    out = np.zeros(3)
    out[k] = np.sign(v[k])
    return out


def plan_retarget(
    rig: BvhMotion, spec: DatasetSpec, mapping: dict[str, str] | None = None, source: str = "the rig"
) -> RetargetPlan:
    """Resolve the mapping (built-in guess when None) and measure the rig's rest pose, axes and leg length."""
    names = rig.names
    by_name = mapping if mapping is not None else guess_mapping(names)
    check_required(by_name, source)
    mapped = {names.index(n): source_index(s, spec) for n, s in by_name.items()}
    mapped = {j: i for j, i in mapped.items() if i is not None}
    rig_of = {i: j for j, i in mapped.items()}
    root_src = source_index("pelvis", spec)
    hips = rig_of[root_src]
    rest = rest_pose(rig)
    rest_pos = rest[0]

    def below_hips(j: int) -> bool:
        while j >= 0 and j != hips:
            j = rig.parents[j]
        return j == hips

    stray = [names[j] for j in mapped if not below_hips(j)]
    if stray:
        raise ValueError(f"{source}: joints {stray} are mapped but not below the hips joint {names[hips]!r}")
    anchors: dict[int, tuple[tuple[int, ...], float]] = {hips: ((root_src,), 0.0)}
    for j in sorted(mapped, key=mapped.get):
        if j == hips:
            continue
        top = rig.parents[j]
        while top not in mapped:
            top = rig.parents[top]
        path = _source_path(spec, mapped[top], mapped[j])
        if path is None:
            raise ValueError(
                f"{source}: {names[j]!r} (-> {spec.joint_names[mapped[j]]}) is below {names[top]!r} "
                f"(-> {spec.joint_names[mapped[top]]}) in the rig but not in the source skeleton; "
                "fix the mapping"
            )
        lengths = _chain_length(rest_pos, rig.parents, top, j)
        total = max(lengths[j], 1e-12)
        for k, length in lengths.items():
            if k != top and k not in anchors:
                anchors[k] = ((mapped[j],), 0.0) if k == j else (path, length / total)
    driven = tuple(sorted(anchors))
    pos = {j: k for k, j in enumerate(driven)}
    sub_parents = tuple(-1 if j == hips else pos[rig.parents[j]] for j in driven)
    sub_offsets = np.array([np.zeros(3) if j == hips else rest_pos[j] - rest_pos[rig.parents[j]] for j in driven])

    up_name = next((s for s in _UP_FROM if source_index(s, spec) in rig_of), None)
    if up_name is None:
        raise ValueError(f"{source}: no rig joint maps to the spine, neck or head; cannot tell which way is up")
    side = {s: rest_pos[rig_of[source_index(s, spec)]] for s in ("left_hip", "right_hip", up_name, "pelvis")}
    up = _axis_snap(_unit(side[up_name] - side["pelvis"]))
    left = side["left_hip"] - side["right_hip"]
    left = _axis_snap(_unit(left - np.dot(left, up) * up))
    basis = np.stack([left, up, np.cross(left, up)], axis=1)
    if abs(np.linalg.det(basis) - 1.0) > 1e-6:
        raise ValueError(f"{source}: the rest pose's hips and spine do not give a usable up/left frame")

    hinges = {}
    for name, bend in _HINGE_BEND.items():
        j, nxt = rig_of.get(source_index(name, spec)), rig_of.get(source_index(_HINGE_NEXT[name], spec))
        kids = [k for k in driven if rig.parents[k] == j]
        if j is not None and kids == [nxt]:
            bone = rest_pos[nxt] - rest_pos[j]
            hinges[pos[j]] = _unit(np.cross(bone, bend * basis[:, 2]))
    sub = BvhRig(
        tuple(names[j] for j in driven), sub_parents, tuple(range(len(driven))), _unit(sub_offsets), None, hinges
    )
    legs = [
        _chain_length(
            rest_pos, rig.parents, rig_of[source_index(f"{s}_hip", spec)], rig_of[source_index(f"{s}_ankle", spec)]
        )
        for s in ("left", "right")
    ]
    leg_length = float(np.mean([max(chain.values()) for chain in legs]))
    return RetargetPlan(
        rig,
        spec,
        source,
        mapped,
        driven,
        tuple(anchors[j][0] for j in driven),
        np.array([anchors[j][1] for j in driven]),
        sub,
        sub_offsets,
        basis,
        rest,
        leg_length,
    )


def load_plan(
    rig_path: str | os.PathLike[str], spec: DatasetSpec, mapping_path: str | os.PathLike[str] | None = None
) -> RetargetPlan:
    """:func:`plan_retarget` for a rig file and an optional JSON mapping file."""
    rig_path = Path(rig_path)
    if not rig_path.is_file():
        raise FileNotFoundError(f"--target_rig {rig_path} not found")
    rig = read_bvh(rig_path)
    mapping = read_mapping(mapping_path, rig.names, str(rig_path)) if mapping_path else None
    return plan_retarget(rig, spec, mapping, str(rig_path))


def source_leg_length(joints: np.ndarray, spec: DatasetSpec) -> float:
    """Mean hip-to-ankle length (thigh + shin) of a motion (T, J, 3), both sides, all frames."""
    total = []
    for s in ("left", "right"):
        hip, knee, ankle = (source_index(f"{s}_{p}", spec) for p in ("hip", "knee", "ankle"))
        total.append(
            np.linalg.norm(joints[:, knee] - joints[:, hip], axis=-1)
            + np.linalg.norm(joints[:, ankle] - joints[:, knee], axis=-1)
        )
    return float(np.mean(total))


def source_points(joints: np.ndarray, plan: RetargetPlan) -> np.ndarray:
    """The point on the source skeleton each driven joint follows: (T, J, 3) -> (T, Jd, 3), source axes/units."""
    out = np.empty((joints.shape[0], len(plan.driven), 3))
    for k, (path, f) in enumerate(zip(plan.paths, plan.fractions)):
        pts = joints[:, list(path)]  # (T, n, 3)
        if len(path) == 1:
            out[:, k] = pts[:, 0]
            continue
        seg = np.linalg.norm(np.diff(pts, axis=1), axis=-1)  # (T, n-1)
        cum = np.concatenate([np.zeros_like(seg[:, :1]), np.cumsum(seg, axis=1)], axis=1)
        goal = f * cum[:, -1]
        i = np.clip((cum[:, 1:-1] < goal[:, None]).sum(axis=1), 0, len(path) - 2)  # segment holding the goal
        t = np.arange(len(i))
        w = np.clip((goal - cum[t, i]) / np.maximum(seg[t, i], 1e-12), 0.0, 1.0)[:, None]
        out[:, k] = pts[t, i] * (1 - w) + pts[t, i + 1] * w
    return out


def target_directions(joints: np.ndarray, plan: RetargetPlan) -> np.ndarray:
    """Unit directions (T, Jd, 3) in rig axes of every driven bone (row 0, the hips, is zero)."""
    pts = source_points(joints, plan) @ plan.basis.T
    parents = np.array(plan.sub.parents)
    dirs = _unit(pts - pts[:, np.maximum(parents, 0)])
    dirs[:, 0] = 0.0
    return dirs


def fitted_directions(dirs: np.ndarray, plan: RetargetPlan) -> np.ndarray:
    """Bone directions (T, Jd, 3) the rig can take: where several bones leave one joint (hips, chest) its rest
    configuration cannot match every source direction, so those bones get their rest directions carried by the
    rigid fit onto the source's (what :func:`visualization.joints2bvh.solve_rotations` does); others are kept."""
    out = dirs.copy()
    for ks in plan.sub.children:
        if len(ks) > 1:
            rest = _unit(plan.sub_offsets[ks])
            out[:, ks] = np.einsum("tij,kj->tki", fit_rotation(rest, dirs[:, ks]), rest)  # (T, 3, 3) fit
    return out


def source_contacts(joints: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """(T, 4) bool contacts of the source's (left ankle, left foot, right ankle, right foot), found by the
    clean-up's detection (:func:`utils.cleanup.detect_contacts`; the feet laid out as a t2m skeleton, metres)."""
    feet = np.zeros((len(joints), _T2M.joints_num, 3))  # only the foot joints are read
    for name in _FEET:
        feet[:, _T2M.joint_names.index(name)] = joints[:, source_index(name, spec)]
    return detect_contacts(to_metres(feet, spec), _T2M, spec.fps)


def _pitched_foot(ankle_to_toe: np.ndarray, length: float, up: np.ndarray, max_turn: float) -> np.ndarray:
    """Unit directions (T, 3) of a foot ``length`` long whose toe is where the source's is and whose ankle is as
    high as the source's (the source foot ``ankle_to_toe`` (T, 3), ``up`` (3,)): the source foot pitched in its
    vertical plane, by at most ``max_turn`` radians, and only where that raises the ankle."""
    rise = ankle_to_toe @ up  # (T,)
    ahead = ankle_to_toe - rise[:, None] * up
    level = np.linalg.norm(ahead, axis=-1)
    ahead /= np.maximum(level, 1e-12)[:, None]
    source = np.arctan2(rise, level)  # the source foot's pitch (T,)
    wanted = np.arcsin(np.clip(rise / length, -1.0, 1.0))
    # Only toe-down (a smaller pitch) raises the ankle with the toe fixed; never turn the other way.
    pitch = source - np.clip(source - wanted, 0.0, max_turn)
    return np.cos(pitch)[:, None] * ahead + np.sin(pitch)[:, None] * up


def plant_feet(
    body: np.ndarray, joints: np.ndarray, plan: RetargetPlan, ratio: float, blend: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Place the body and put the feet on the source's footprints: driven joints with the hips at the origin
    (T, Jd, 3) -> driven joints (T, Jd, 3) and the root scale (3,) per source axis.

    The root moves along the source's pelvis path x ``ratio`` horizontally. Matching directions alone makes a rig
    whose hip spacing, thigh/shin split or foot length differs from the source's slide its feet. So each ankle
    goes where the source ankle is (x ``ratio``) plus the offset of the rig's hip from the source's hip, that
    offset's horizontal part held still while the source's foot is on the floor (a contact run, or within
    :data:`utils.physical.SKATE_HEIGHT`; :func:`utils.cleanup.lock_offsets`, eased over ``blend`` frames), so it
    only changes in the air; while the source's toe is planted the ankle moves along the foot so the toe, not the
    ankle, stays on the source's toe (a foot of another length pivots on its toe as the source's does); a shorter
    foot pitches up to 5° more there so its ankle is no lower than the source's (a lower heel would count as on
    the floor, and slide, where the source's is lifted), the joints below the ankle turning with it. The
    vertical root scale is the least-squares one whose hips leave each ankle goal at the source's hip-to-ankle
    distance (as a share of the leg), so the knees bend as the source's do. Thigh and shin reach the ankle by
    two-bone IK in the knee's plane (:func:`utils.cleanup.two_bone_ik`); the foot keeps the source's direction
    (but for that pitch); driven joints below the ankle move with it. Legs with joints between hip, knee and ankle
    are left as they are."""
    spec, parents = plan.spec, plan.sub.parents
    index = {j: k for k, j in enumerate(plan.driven)}
    rig_of = {i: j for j, i in plan.mapped.items()}
    lengths = np.linalg.norm(plan.sub_offsets, axis=-1)
    contacts = source_contacts(joints, spec)
    src = ratio * joints @ plan.basis.T  # (T, J, 3) source x leg-length ratio, rig axes
    pelvis = joints[:, source_index("pelvis", spec)]
    out = body + ((ratio * pelvis * [1.0, 0.0, 1.0]) @ plan.basis.T)[:, None]  # vertical root still 0
    legs, heights = [], []
    for side, (on_ankle, on_toe) in zip(("left", "right"), contacts.reshape(-1, 2, 2).transpose(1, 2, 0)):
        h, k, a = (index[rig_of[source_index(f"{side}_{p}", spec)]] for p in ("hip", "knee", "ankle"))
        if parents[a] != k or parents[k] != h:
            continue
        hip, knee, ankle, toe_at = (src[:, source_index(f"{side}_{p}", spec)] for p in ("hip", "knee", "ankle", "foot"))
        shift = (out[:, h] - hip) @ plan.basis * [1.0, 0.0, 1.0]  # horizontal, source axes (y up)
        grounded = to_metres(joints[:, [source_index(f"{side}_{p}", spec) for p in ("ankle", "foot")], 1], spec)
        held, _ = lock_offsets(shift, on_ankle | on_toe | (grounded.min(axis=1) < SKATE_HEIGHT), blend)
        goal = ankle + (shift + held) @ plan.basis.T
        foot = _unit(toe_at - ankle)
        pitched = foot
        toe = index.get(rig_of.get(source_index(f"{side}_foot", spec)))
        if toe is not None and parents[toe] == a:
            _, pivot = lock_offsets(toe_at, on_toe, blend)  # (T,) 1 while the toe is planted, eased
            pitched = _pitched_foot(toe_at - ankle, lengths[toe], plan.basis[:, 1], _MAX_FOOT_PITCH)
            pitched = _unit(foot + pivot[:, None] * (pitched - foot))
            goal += pivot[:, None] * (toe_at - ankle - lengths[toe] * pitched)
        # Hip height (above the goal) at which the rig's leg spans the source's share of its length.
        share = np.linalg.norm(ankle - hip, axis=-1) / (
            np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)
        )
        across = (goal - out[:, h]) @ plan.basis * [1.0, 0.0, 1.0]
        rise = np.sqrt(np.maximum((share * (lengths[k] + lengths[a])) ** 2 - (across**2).sum(-1), 0.0))
        heights.append((goal - out[:, h]) @ plan.basis[:, 1] + rise)  # (T,) root height wanted by this leg
        legs.append((h, k, a, goal, foot, pitched))
    vertical = ratio
    if heights:  # least squares of vertical * pelvis height = the legs' mean wanted root height
        vertical = float((pelvis[:, 1] * np.mean(heights, axis=0)).sum() / max((pelvis[:, 1] ** 2).sum(), 1e-12))
    scale = np.array([ratio, vertical, ratio])
    out += (vertical * pelvis[:, 1])[:, None, None] * plan.basis[:, 1]
    for h, k, a, goal, foot, pitched in legs:
        out[:, k], new_ankle = two_bone_ik(out[:, h], out[:, k], out[:, a], goal, foot)
        below = {a}
        for j in range(a + 1, len(parents)):  # file order: a parent comes before its children
            if parents[j] in below:
                below.add(j)
        rest = sorted(below - {a})  # they turn with the foot's pitch about the ankle, and move with it
        turn = np.repeat(qbetween(foot, pitched)[:, None], len(rest), axis=1)  # (T, R, 4)
        out[:, rest] = new_ankle[:, None] + qrot(turn, out[:, rest] - out[:, a, None])
        out[:, a] = new_ankle
    return out, scale


def retarget(joints: np.ndarray, plan: RetargetPlan) -> tuple[BvhMotion, np.ndarray]:
    """Joint positions (T, J, 3) of ``plan.spec`` -> a motion of the rig, and the root scale (3,) per source axis
    (x and z: the leg-length ratio; y: see :func:`plant_feet`)."""
    spec = check_joints(joints, plan.spec, min_frames=2)
    joints = np.asarray(joints, dtype=np.float64)
    rig, num_frames = plan.rig, joints.shape[0]
    ratio = plan.leg_length / source_leg_length(joints, spec)
    dirs = fitted_directions(target_directions(joints, plan), plan)
    lengths = np.linalg.norm(plan.sub_offsets, axis=-1)
    targets = np.zeros_like(dirs)
    for k, p in enumerate(plan.sub.parents[1:], start=1):
        targets[:, k] = targets[:, p] + lengths[k] * dirs[:, k]
    targets, scale = plant_feet(targets, joints, plan, ratio)
    delta_driven = solve_rotations(targets, plan.sub_offsets, plan.sub)  # (T, Jd, 4) world, from rest

    rest_pos, rest_rot, rest_local, rest_trans = plan.rest
    # Joints that follow nothing keep their rest local rotation; the ancestors of the hips stay at rest.
    local = np.repeat(rest_local[None], num_frames, axis=0)
    glob = qmul(delta_driven, np.broadcast_to(rest_rot[list(plan.driven)], delta_driven.shape))  # (T, Jd, 4)
    above = rest_rot[rig.parents[plan.hips]] if rig.parents[plan.hips] >= 0 else np.array([1.0, 0.0, 0.0, 0.0])
    parent_glob = np.concatenate(
        [np.broadcast_to(above, glob[:, :1].shape), glob[:, list(plan.sub.parents[1:])]], axis=1
    )
    local[:, list(plan.driven)] = qmul(qinv(parent_glob), glob)
    index = set(plan.driven)

    channels = list(rig.channels)
    rotations = np.zeros((num_frames, len(rig.names), 3))
    for j in range(len(rig.names)):
        if j in index and not any(c.endswith("rotation") for c in channels[j]):
            channels[j] = channels[j] + _ROT
        order = "".join(c[0].lower() for c in channels[j] if c.endswith("rotation"))
        if len(order) == 3:
            rotations[:, j] = continuous_euler(np.rad2deg(quat_to_euler(local[:, j], order)))
    # The file's root carries the translation (a floor-level root above the hips moves with them): FBX and
    # Blender ignore translation keys on bones below the root.
    if not any(c in POSITION_CHANNELS for c in channels[0]):
        channels[0] = POSITION_CHANNELS + channels[0]
    positions = np.repeat(rest_trans[None], num_frames, axis=0)
    positions[:, 0] = targets[:, 0] - rest_pos[plan.hips] + rest_pos[0]
    motion = BvhMotion(
        rig.names, rig.parents, rig.offsets, tuple(channels), rotations, positions, 1.0 / spec.fps, rig.end_sites
    )
    return motion, scale


def bone_direction_errors(positions: np.ndarray, joints: np.ndarray, plan: RetargetPlan) -> np.ndarray:
    """Angle in degrees (T, Jd - 1) between each driven bone of rig positions (T, J_rig, 3) and its source bone.

    Rest-pose correction: where several bones leave one joint (hips, chest) the rig's rest configuration cannot
    match the source's in every bone, so the expected directions are the rig's rest bones carried by the rigid
    fit onto the source directions at that frame; elsewhere the expected direction is the source bone's.
    """
    expected = fitted_directions(target_directions(joints, plan), plan)
    driven = positions[:, list(plan.driven)]
    parents = list(plan.sub.parents[1:])
    got = _unit(driven[:, 1:] - driven[:, parents])
    cos = np.clip((got * expected[:, 1:]).sum(-1), -1.0, 1.0)
    return np.rad2deg(np.arccos(cos))


# ----------------------------------------------------------------------------------------------------------------
# visualization.convert / export hooks


def save_retargeted_bvh(joints: np.ndarray, path: str | os.PathLike[str], plan: RetargetPlan) -> Path:
    """:func:`retarget` then an atomic write; logs the root scale."""
    motion, scale = retarget(joints, plan)
    logger.info(
        "retargeted onto %s: %d of %d rig joints follow the motion, root scale %.4g (leg-length ratio), "
        "%.4g vertically",
        plan.source,
        len(plan.driven),
        len(plan.rig.names),
        scale[0],
        scale[1],
    )
    return write_bvh(path, motion)


def save_rig_bvh(joints: np.ndarray, path: Path, spec: DatasetSpec, rig: Path) -> Path:
    """Web demo: retarget onto an uploaded rig BVH (built-in name mapping); errors name the upload, not its path."""
    try:
        plan = load_plan(rig, spec)
    except (ValueError, FileNotFoundError) as exc:
        raise ValueError(f"uploaded rig {rig.name!r}: {str(exc).replace(str(rig), rig.name)}") from None
    return save_retargeted_bvh(joints, path, plan)


def prepare_rig(target_rig: str, mapping: str, spec: DatasetSpec, kinds: list[str]) -> RetargetPlan | None:
    """gen_t2m: check ``--target_rig/--mapping`` and Blender for ``--outputs fbx,glb`` before any generation."""
    if any(k in kinds for k in ("fbx", "glb")):
        find_blender(purpose="--outputs fbx/glb")
    if mapping and not target_rig:
        raise ValueError("--mapping needs --target_rig rig.bvh")
    return load_plan(target_rig, spec, mapping or None) if target_rig else None


def write_motion_bvh(motion: Motion, path: Path, args: argparse.Namespace) -> None:
    """convert writer for .bvh: onto ``--target_rig`` (with ``--mapping``) when given, else the project's rig."""
    from visualization.joints2bvh import write_motion_bvh as write_own_rig

    rig = getattr(args, "target_rig", None)
    if not rig:
        prepare_rig("", getattr(args, "mapping", None), motion.spec, [])
        write_own_rig(motion, path, args)
        return
    plan = prepare_rig(rig, getattr(args, "mapping", None), motion.spec, [])
    save_retargeted_bvh(motion.as_joints(), path, plan)


def write_motion_via_blender(motion: Motion, path: Path, args: argparse.Namespace) -> None:
    """convert writer for .fbx / .glb / .gltf: the .bvh writer's result exported by Blender (needs ``blender``)."""
    find_blender(purpose=f"writing {path.suffix}")
    with tempfile.TemporaryDirectory() as tmp:
        bvh = Path(tmp) / "motion.bvh"
        write_motion_bvh(motion, bvh, args)
        export_with_blender(bvh, [path])
