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
* the root moves along the source path times the leg-length ratio (rig hip-to-ankle rest length over the
  source's), so the feet keep their footing on other proportions (the file's root carries it, also when it is a
  floor-level joint above the hips), and each ankle is put on the source ankle's path x that ratio by two-bone
  IK of thigh and shin (:func:`plant_feet`), so a different thigh/shin split does not slide the feet; the rig's
  axes (Y or Z up, any facing) and
  units (m, cm) are read off its rest pose: up = hips to head, left = right hip to left hip.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from utils.motion import check_joints
from utils.quaternion import qinv, qmul, quat_to_euler
from utils.skeleton import DatasetSpec
from visualization.blender_check import export_with_blender, find_blender
from visualization.bvh import POSITION_CHANNELS, BvhMotion, continuous_euler, forward_kinematics, read_bvh, write_bvh
from visualization.joints2bvh import BvhRig, fit_rotation, solve_rotations
from visualization.rig_mapping import REQUIRED, check_required, guess_mapping, read_mapping, source_index

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


def plant_feet(targets: np.ndarray, joints: np.ndarray, plan: RetargetPlan, ratio: float) -> np.ndarray:
    """Keep each foot on the source's footprints x ``ratio`` (T, Jd, 3) -> (T, Jd, 3).

    Matching directions alone makes a rig whose thigh/shin split differs from the source's slide its feet. So the
    ankle goes where the source ankle is, x ``ratio``; thigh and shin reach it by two-bone IK in the knee's plane
    and the foot is carried along, its direction kept. This costs the legs a degree or two of direction. Legs with
    joints between hip, knee and ankle are left as they are."""
    out = targets.copy()
    index = {j: k for k, j in enumerate(plan.driven)}
    rig_of = {i: j for j, i in plan.mapped.items()}
    spec, parents = plan.spec, plan.sub.parents
    lengths = np.linalg.norm(plan.sub_offsets, axis=-1)
    src = {name: joints[:, source_index(name, spec)] @ plan.basis.T for name in REQUIRED}
    forward = _unit(np.cross(src["left_hip"] - src["right_hip"], plan.basis[:, 1]))
    for side in ("left", "right"):
        h, k, a = (index[rig_of[source_index(f"{side}_{p}", spec)]] for p in ("hip", "knee", "ankle"))
        if parents[a] != k or parents[k] != h:
            continue
        ankle = ratio * src[f"{side}_ankle"]
        hip, l1, l2 = out[:, h], lengths[k], lengths[a]
        reach = ankle - hip
        dist = np.clip(np.linalg.norm(reach, axis=-1, keepdims=True), abs(l1 - l2) + 1e-9, (l1 + l2) * (1 - 1e-9))
        u = _unit(reach)
        bend = out[:, k] - hip + 1e-3 * l1 * forward  # knee side; forward when straight
        n = _unit(bend - (bend * u).sum(-1, keepdims=True) * u)
        cos = np.clip((l1**2 + dist**2 - l2**2) / (2 * l1 * dist), -1.0, 1.0)
        below = {a}
        for j in range(a + 1, len(parents)):
            if parents[j] in below:
                below.add(j)
        shift = hip + u * dist - out[:, a]
        out[:, k] = hip + l1 * (cos * u + np.sqrt(1 - cos**2) * n)
        out[:, sorted(below)] += shift[:, None]
    return out


def retarget(joints: np.ndarray, plan: RetargetPlan) -> tuple[BvhMotion, float]:
    """Joint positions (T, J, 3) of ``plan.spec`` -> a motion of the rig, and the root scale (leg-length ratio)."""
    spec = check_joints(joints, plan.spec, min_frames=2)
    joints = np.asarray(joints, dtype=np.float64)
    rig, num_frames = plan.rig, joints.shape[0]
    ratio = plan.leg_length / source_leg_length(joints, spec)
    dirs = target_directions(joints, plan)
    lengths = np.linalg.norm(plan.sub_offsets, axis=-1)
    targets = np.empty_like(dirs)
    targets[:, 0] = ratio * joints[:, source_index("pelvis", spec)] @ plan.basis.T
    for k, p in enumerate(plan.sub.parents[1:], start=1):
        targets[:, k] = targets[:, p] + lengths[k] * dirs[:, k]
    targets = plant_feet(targets, joints, plan, ratio)
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
    return motion, ratio


def bone_direction_errors(positions: np.ndarray, joints: np.ndarray, plan: RetargetPlan) -> np.ndarray:
    """Angle in degrees (T, Jd - 1) between each driven bone of rig positions (T, J_rig, 3) and its source bone.

    Rest-pose correction: where several bones leave one joint (hips, chest) the rig's rest configuration cannot
    match the source's in every bone, so the expected directions are the rig's rest bones carried by the rigid
    fit onto the source directions at that frame; elsewhere the expected direction is the source bone's.
    """
    expected = target_directions(joints, plan)
    kids = plan.sub.children
    for _j, ks in enumerate(kids):
        if len(ks) > 1:
            fit = fit_rotation(_unit(plan.sub_offsets[ks]), expected[:, ks])  # (T, 3, 3)
            expected[:, ks] = np.einsum("tij,kj->tki", fit, _unit(plan.sub_offsets[ks]))
    driven = positions[:, list(plan.driven)]
    parents = list(plan.sub.parents[1:])
    got = _unit(driven[:, 1:] - driven[:, parents])
    cos = np.clip((got * expected[:, 1:]).sum(-1), -1.0, 1.0)
    return np.rad2deg(np.arccos(cos))


# ----------------------------------------------------------------------------------------------------------------
# visualization.convert / export hooks


def save_retargeted_bvh(joints: np.ndarray, path: str | os.PathLike[str], plan: RetargetPlan) -> Path:
    """:func:`retarget` then an atomic write; logs the root scale."""
    motion, ratio = retarget(joints, plan)
    logger.info(
        "retargeted onto %s: %d of %d rig joints follow the motion, root scale %.4g (leg-length ratio)",
        plan.source,
        len(plan.driven),
        len(plan.rig.names),
        ratio,
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
