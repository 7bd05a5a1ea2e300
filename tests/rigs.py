"""Test rigs built from scratch: a humanoid rest pose laid out in canonical axes (x left, y up, z forward, metres),
then named, re-oriented and scaled like a real rig family, written as a one-frame BVH (the frame is the rest pose).

* :func:`mixamo_rig`: ``mixamorig:`` names, 3-bone spine, fingers and twist leaves, A-pose, long legs, Y up;
* :func:`lafan_rig`: LAFAN's 22 names (``LeftToe``), facing +x, every bone along its joint's local +x (so the zero
  pose is not a human pose; the rest rotations are in the frame), position channels on every joint, YXZ Euler;
* :func:`game_rig`: Unreal-style names (needs a JSON mapping), a ``root`` joint on the floor above ``pelvis``,
  4 spine joints, twist leaves, centimetres, Z up, facing -y.
"""

from __future__ import annotations

import numpy as np

from utils.quaternion import qbetween, qinv, qmul, qrot, quat_from_axis_angle, quat_to_euler
from visualization.bvh import POSITION_CHANNELS, BvhMotion

Joint = tuple[str, str | None, np.ndarray]  # key, parent key, canonical rest position


def humanoid(
    *,
    spine: int = 3,
    leg: float = 0.85,
    torso: float = 0.55,
    arm: float = 0.58,
    shoulders: float = 0.38,
    hips_width: float = 0.19,
    thigh_share: float = 0.52,
    arm_down_deg: float = 0.0,
    fingers: bool = False,
    twist: bool = False,
) -> list[Joint]:
    """Canonical rest joints (parents listed first)."""
    hip_y = leg * 1.1
    j: list[Joint] = [("hips", None, np.array([0.0, hip_y, 0.0]))]
    prev = "hips"
    for k in range(1, spine + 1):
        j.append((f"spine{k}", prev, np.array([0.0, hip_y + 0.1 * torso + 0.8 * torso * (k - 1) / spine, -0.01 * k])))
        prev = f"spine{k}"
    neck = np.array([0.0, hip_y + torso, -0.02])
    j += [("neck", prev, neck), ("head", "neck", neck + [0, 0.1, 0.02]), ("head_end", "head", neck + [0, 0.28, 0.02])]
    down = np.deg2rad(arm_down_deg)
    for side, sx in (("l", 1.0), ("r", -1.0)):
        arm_dir = np.array([sx * np.cos(down), -np.sin(down), 0.0])
        collar = neck + [sx * 0.03, -0.05, 0.0]
        shoulder = np.array([sx * shoulders / 2, collar[1] - 0.02, -0.01])
        elbow, wrist = shoulder + 0.52 * arm * arm_dir, shoulder + arm * arm_dir
        j += [
            (f"{side}_collar", prev, collar),
            (f"{side}_upperarm", f"{side}_collar", shoulder),
            (f"{side}_forearm", f"{side}_upperarm", elbow),
            (f"{side}_hand", f"{side}_forearm", wrist),
        ]
        if twist:
            j.append((f"{side}_forearm_twist", f"{side}_forearm", (elbow + wrist) / 2))
        if fingers:
            for f in range(5):
                base = f"{side}_hand"
                for k in range(3):
                    pos = wrist + arm_dir * (0.08 + 0.03 * k) + [0.0, 0.0, 0.02 * (f - 2)]
                    j.append((f"{side}_finger{f}_{k}", base, pos))
                    base = f"{side}_finger{f}_{k}"
        top = np.array([sx * hips_width / 2, hip_y - 0.06, 0.0])
        knee = top + [0.0, -thigh_share * leg, 0.015]
        ankle = knee + [0.0, -(1 - thigh_share) * leg, -0.02]
        j += [
            (f"{side}_thigh", "hips", top),
            (f"{side}_shin", f"{side}_thigh", knee),
            (f"{side}_foot", f"{side}_shin", ankle),
            (f"{side}_toe", f"{side}_foot", ankle + [0, -0.06, 0.13]),
            (f"{side}_toe_end", f"{side}_toe", ankle + [0, -0.07, 0.2]),
        ]
    return j


def build_rig(
    joints: list[Joint],
    names: dict[str, str],
    axes: np.ndarray,
    scale: float = 1.0,
    *,
    root: str | None = None,
    bone_along_x: bool = False,
    order: str = "zyx",
    positions_everywhere: bool = False,
) -> BvhMotion:
    """A one-frame BVH: canonical joints renamed (keys missing from ``names`` are left out with their subtrees),
    world = axes @ canonical * scale. ``root``: name of an extra floor-level root joint above the hips.
    ``bone_along_x``: joint frames turned so the first child lies on local +x (rest rotations in the frame)."""
    kept = [(names[k], names.get(p) if p else None, axes @ pos * scale) for k, p, pos in joints if k in names]
    if root is not None:
        kept = [(root, None, np.zeros(3))] + [(n, p or root, x) for n, p, x in kept]
    kept = _depth_first(kept)
    order_names = [n for n, _, _ in kept]
    parents = tuple(-1 if p is None else order_names.index(p) for _, p, _ in kept)
    world = np.array([x for _, _, x in kept])
    rot = np.zeros((len(kept), 4))
    rot[:, 0] = 1.0
    if bone_along_x:
        for j in range(len(kept)):
            kids = [c for c, p in enumerate(parents) if p == j]
            if kids:
                swing = qbetween(np.array([1.0, 0.0, 0.0]), world[kids[0]] - world[j])
                rot[j] = qmul(swing, quat_from_axis_angle(np.array([1.0, 0.0, 0.0]), np.array(0.5 + 0.1 * j)))
            else:
                rot[j] = rot[parents[j]]
    parent_rot = np.array([rot[p] if p >= 0 else [1.0, 0, 0, 0] for p in parents])
    parent_pos = np.array([world[p] if p >= 0 else np.zeros(3) for p in parents])
    offsets = qrot(qinv(parent_rot), world - parent_pos)
    local = qmul(qinv(parent_rot), rot)
    rot_channels = tuple(f"{a.upper()}rotation" for a in order)
    channels = tuple(
        POSITION_CHANNELS + rot_channels if p < 0 or positions_everywhere else rot_channels for p in parents
    )
    euler = np.rad2deg(quat_to_euler(local, order))[None]
    end_sites = {j: np.array([0.0, 0.05 * scale, 0.0]) for j in range(len(kept)) if j not in parents}
    return BvhMotion(tuple(order_names), parents, offsets, channels, euler, offsets[None].copy(), 1 / 30, end_sites)


def _depth_first(joints: list[tuple]) -> list[tuple]:
    """Joints (name, parent name, ...) in BVH file order: depth first, children in listed order."""
    out: list[tuple] = []

    def visit(name: str | None) -> None:
        for joint in joints:
            if joint[1] == name:
                out.append(joint)
                visit(joint[0])

    visit(None)
    return out


_SIDES = (("l", "Left"), ("r", "Right"))
# Columns: where each rig puts the canonical left, up and forward axes.
MIXAMO_AXES = np.eye(3)
LAFAN_AXES = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # left -z, up y, forward +x
GAME_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # left x, up z, forward -y


def mixamo_rig() -> BvhMotion:
    names = {
        "hips": "Hips",
        "spine1": "Spine",
        "spine2": "Spine1",
        "spine3": "Spine2",
        "neck": "Neck",
        "head": "Head",
        "head_end": "HeadTop_End",
    }
    for s, side in _SIDES:
        names.update(
            {
                f"{s}_collar": f"{side}Shoulder",
                f"{s}_upperarm": f"{side}Arm",
                f"{s}_forearm": f"{side}ForeArm",
                f"{s}_hand": f"{side}Hand",
                f"{s}_forearm_twist": f"{side}ForeArmTwist",
                f"{s}_thigh": f"{side}UpLeg",
                f"{s}_shin": f"{side}Leg",
                f"{s}_foot": f"{side}Foot",
                f"{s}_toe": f"{side}ToeBase",
                f"{s}_toe_end": f"{side}Toe_End",
            }
        )
        for f, finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Pinky")):
            names.update({f"{s}_finger{f}_{k}": f"{side}Hand{finger}{k + 1}" for k in range(3)})
    names = {k: f"mixamorig:{v}" for k, v in names.items()}
    body = humanoid(
        leg=0.95,
        torso=0.5,
        arm=0.62,
        shoulders=0.42,
        hips_width=0.22,
        thigh_share=0.5,
        arm_down_deg=45.0,
        fingers=True,
        twist=True,
    )
    return build_rig(body, names, MIXAMO_AXES)


def lafan_rig() -> BvhMotion:
    names = {"hips": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck", "head": "Head"}
    for s, side in _SIDES:
        names.update(
            {
                f"{s}_collar": f"{side}Shoulder",
                f"{s}_upperarm": f"{side}Arm",
                f"{s}_forearm": f"{side}ForeArm",
                f"{s}_hand": f"{side}Hand",
                f"{s}_thigh": f"{side}UpLeg",
                f"{s}_shin": f"{side}Leg",
                f"{s}_foot": f"{side}Foot",
                f"{s}_toe": f"{side}Toe",
            }
        )
    body = humanoid(leg=0.82, torso=0.58, arm=0.55, shoulders=0.36, thigh_share=0.505)
    return build_rig(body, names, LAFAN_AXES, 100.0, bone_along_x=True, order="yxz", positions_everywhere=True)


GAME_MAPPING: dict[str, str | None] = {"pelvis": "pelvis", "neck_01": "neck", "head": "head", "spine_01": None}
for _s, _side in (("l", "left"), ("r", "right")):
    GAME_MAPPING.update(
        {
            f"clavicle_{_s}": f"{_side}_collar",
            f"upperarm_{_s}": f"{_side}_shoulder",
            f"lowerarm_{_s}": f"{_side}_elbow",
            f"hand_{_s}": f"{_side}_wrist",
            f"thigh_{_s}": f"{_side}_hip",
            f"calf_{_s}": f"{_side}_knee",
            f"foot_{_s}": f"{_side}_ankle",
            f"ball_{_s}": f"{_side}_foot",
        }
    )


def game_rig() -> BvhMotion:
    names = {"hips": "pelvis", "neck": "neck_01", "head": "head"}
    names.update({f"spine{k}": f"spine_0{k}" for k in range(1, 5)})
    for s, _ in _SIDES:
        names.update(
            {
                f"{s}_collar": f"clavicle_{s}",
                f"{s}_upperarm": f"upperarm_{s}",
                f"{s}_forearm": f"lowerarm_{s}",
                f"{s}_hand": f"hand_{s}",
                f"{s}_forearm_twist": f"lowerarm_twist_01_{s}",
                f"{s}_thigh": f"thigh_{s}",
                f"{s}_shin": f"calf_{s}",
                f"{s}_foot": f"foot_{s}",
                f"{s}_toe": f"ball_{s}",
            }
        )
    body = humanoid(
        spine=4, leg=0.8, torso=0.6, arm=0.56, shoulders=0.4, thigh_share=0.52, arm_down_deg=20.0, twist=True
    )
    return build_rig(body, names, GAME_AXES, 100.0, root="root")


# ---- measurements shared by the retarget tests -------------------------------------------------------------------
FEET = ("left_ankle", "left_foot", "right_ankle", "right_foot")
