"""DeepMimic reference clips (shipped with pybullet) -> 22-joint HumanML3D-style joint positions at 20 fps.

A clip file is JSON ``{"Loop": "wrap"|"none", "Frames": [[dt, root_pos(3), root_quat(4), chest(4), neck(4),
r_hip(4), r_knee(1), r_ankle(4), r_shoulder(4), r_elbow(1), l_hip(4), l_knee(1), l_ankle(4), l_shoulder(4),
l_elbow(1)], ...]}``: local rotations as (w, x, y, z) quaternions, knees/elbows 1-DoF angles about local z,
metres, Y up, character facing +x with its right side at +z. Joint offsets come from ``humanoid/humanoid.urdf``
(× 0.25 = metres, the scale pybullet loads it with).

Mapping to the SMPL joint order (docs/data.md): the 15 DeepMimic joints map directly (root → pelvis region,
chest → spine2, neck, hips, knees, ankles, shoulders, elbows, wrists = forearm ends); the others are placed
rigidly in their parent body's frame: spine3 a quarter of the way chest → neck, head above and in front of the
neck, each foot joint (ball of the foot) 11 cm ahead of the ankle, just above the sole of the foot box; the
pelvis, spine1 and the collars are then placed so that the pelvis and spine3 groups have the SMPL template's
shape (``prepare.body_geometry``; DeepMimic's hips are level with its root, which a template-rig BVH cannot turn
into SMPL hips). Only bone *directions* matter downstream: ``extract_features`` retargets every clip onto the
HumanML3D skeleton. Output axes are HumanML3D's: Y up, the character's left at +X when it faces +Z
(``x' = -z, y' = y, z' = x``).

Lengths: every clip is extended to ``CLIP_FRAMES`` (20 fps) by looping (cyclic clips), repeating the action with
a short crossfade back to its start pose (:func:`append`), or holding the last pose, so that captioned sub-ranges
of every length the demo offers can be cut from it (``prepare.demo_captions.sub_ranges``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from prepare.body_geometry import fit_template_geometry
from utils.quaternion import qfix, qmul, qrot, qslerp, quat_from_axis_angle, yaw_quat

URDF_SCALE = 0.25
# Order of the rotation entries after dt, root_pos, root_quat; 1 = revolute about local z, 4 = quaternion.
DOFS = (
    ("chest", 4),
    ("neck", 4),
    ("right_hip", 4),
    ("right_knee", 1),
    ("right_ankle", 4),
    ("right_shoulder", 4),
    ("right_elbow", 1),
    ("left_hip", 4),
    ("left_knee", 1),
    ("left_ankle", 4),
    ("left_shoulder", 4),
    ("left_elbow", 1),
)
# Points (URDF units, in the named body's frame) for the SMPL joints DeepMimic lacks.
PELVIS_ABOVE_HIPS = 0.24  # root frame, +y (only a reference point: body_geometry moves it)
FOOT_POINT = (0.44, -0.18, 0.0)  # ankle frame: ball of the foot, sole at y = -0.20
HEAD_POINT = (0.16, 0.40, 0.0)  # neck frame
COLLAR_POINT = (-0.05, 0.76, 0.24)  # chest frame, z sign = side (+ right); body_geometry moves it
# Frames of every converted clip at 20 fps: extract_features drops one, leaving the longest demo length (196).
CLIP_FRAMES = 197
BLEND_FRAMES = 8  # crossfade from one repetition of a non-cyclic action into the next


def urdf_joint_offsets(urdf: str | Path) -> dict[str, np.ndarray]:
    """Joint origins ``{name: (3,) metres}`` relative to the parent link, read from ``humanoid.urdf``."""
    text = Path(urdf).read_text(encoding="utf-8", errors="replace")
    offsets = {}
    for match in re.finditer(r'<joint name="(\w+)".*?</joint>', text, flags=re.S):
        origin = re.search(r'xyz\s*=\s*"([^"]+)"', match.group(0))
        if origin:
            offsets[match.group(1)] = np.array([float(v) for v in origin.group(1).split()]) * URDF_SCALE
    needed = [
        "chest",
        "neck",
        "right_hip",
        "right_knee",
        "right_ankle",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_hip",
        "left_knee",
        "left_ankle",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ]
    missing = [n for n in needed if n not in offsets]
    if missing:
        raise ValueError(f"{urdf}: joints {missing} not found; is this pybullet_data/humanoid/humanoid.urdf?")
    return offsets


def default_urdf() -> Path:
    """``pybullet_data/humanoid/humanoid.urdf`` (needs the pybullet package)."""
    try:
        import pybullet_data
    except ImportError as exc:
        raise FileNotFoundError("pybullet_data not installed: pip install pybullet, or pass --urdf") from exc
    return Path(pybullet_data.getDataPath()) / "humanoid" / "humanoid.urdf"


@dataclass(frozen=True)
class DeepMimicClip:
    """Frames at ``times`` (N,) seconds: root_pos (N, 3), rotations (N, 13, 4) = root + 12 local joints."""

    times: np.ndarray
    root_pos: np.ndarray
    rotations: np.ndarray
    is_loop: bool

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])


def load_clip(path: str | Path) -> DeepMimicClip:
    """Parse a DeepMimic motion file; revolute angles become quaternions about local z."""
    data = json.loads(Path(path).read_text())
    frames = np.asarray(data["Frames"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != 44 or len(frames) < 2:
        raise ValueError(f"{path}: expected at least 2 frames of 44 numbers, got shape {frames.shape}")
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    rots = [frames[:, 4:8]]
    col = 8
    for _, dof in DOFS:
        if dof == 4:
            rots.append(frames[:, col : col + 4])
        else:
            rots.append(quat_from_axis_angle(np.array([0.0, 0.0, 1.0]), frames[:, col]))
        col += dof
    rotations = np.stack(rots, axis=1)
    rotations = rotations / np.linalg.norm(rotations, axis=-1, keepdims=True)
    return DeepMimicClip(times, frames[:, 1:4], qfix(rotations, dim=-3), data.get("Loop", "none") == "wrap")


def _heading(q: np.ndarray) -> np.ndarray:
    """Yaw (rad, about +Y) of the root's forward (+x) axis. q: (..., 4) -> (...)."""
    fwd = qrot(q, np.broadcast_to(np.array([1.0, 0.0, 0.0]), q.shape[:-1] + (3,)).copy())
    return np.arctan2(-fwd[..., 2], fwd[..., 0])


def loop_clip(clip: DeepMimicClip, cycles: int, straight: bool = False) -> DeepMimicClip:
    """Repeat a cyclic clip: each cycle starts where (and facing where) the previous one ended.

    The last frame of a DeepMimic loop is the first frame of the next cycle, so cycle k contributes frames 1..
    turned by k times the clip's heading change and shifted onto the previous cycle's end. ``straight``: the
    cycles are not turned (a straight walk's small heading change per cycle would add up to a curve).
    """
    if cycles <= 1:
        return clip
    turn = 0.0 if straight else float(_heading(clip.rotations[-1, 0]) - _heading(clip.rotations[0, 0]))
    q_step = yaw_quat(np.array(turn))
    rel = clip.root_pos[1:] - clip.root_pos[0] * [1.0, 0.0, 1.0]  # (N-1, 3), y kept
    times, pos, rots = [clip.times], [clip.root_pos], [clip.rotations]
    q_k = np.array([1.0, 0.0, 0.0, 0.0])
    for _ in range(cycles - 1):
        q_k = qmul(q_step, q_k)
        q_b = np.broadcast_to(q_k, rel.shape[:-1] + (4,)).copy()
        pos.append(qrot(q_b, rel) + pos[-1][-1] * [1.0, 0.0, 1.0])
        cycle_rots = clip.rotations[1:].copy()
        cycle_rots[:, 0] = qmul(q_b, cycle_rots[:, 0])
        rots.append(cycle_rots)
        times.append(clip.times[1:] - clip.times[0] + times[-1][-1])
    rotations = qfix(np.concatenate(rots, axis=0), dim=-3)
    return replace(clip, times=np.concatenate(times), root_pos=np.concatenate(pos), rotations=rotations)


def resample(clip: DeepMimicClip, fps: float = 20.0) -> DeepMimicClip:
    """Uniform frames every 1/fps s over the clip (root position lerp, rotations slerp)."""
    t = np.arange(0.0, clip.duration + 1e-9, 1.0 / fps) + clip.times[0]
    i = np.clip(np.searchsorted(clip.times, t, side="right") - 1, 0, len(clip.times) - 2)
    alpha = np.clip((t - clip.times[i]) / (clip.times[i + 1] - clip.times[i]), 0.0, 1.0)
    pos = clip.root_pos[i] * (1 - alpha[:, None]) + clip.root_pos[i + 1] * alpha[:, None]
    a = np.broadcast_to(alpha[:, None], (len(t), clip.rotations.shape[1])).copy()
    rots = qslerp(clip.rotations[i], clip.rotations[i + 1], a)
    return DeepMimicClip(t - t[0], pos, qfix(rots, dim=-3), clip.is_loop)


def hold(clip: DeepMimicClip, start_frames: int, end_frames: int, fps: float = 20.0) -> DeepMimicClip:
    """Pad a uniformly sampled clip by repeating its first/last frame (standing still before/after)."""
    idx = np.concatenate(
        [np.zeros(start_frames, int), np.arange(len(clip.times)), np.full(end_frames, len(clip.times) - 1)]
    )
    return DeepMimicClip(np.arange(len(idx)) / fps, clip.root_pos[idx], clip.rotations[idx], False)


def append(first: DeepMimicClip, second: DeepMimicClip, blend: int = BLEND_FRAMES, fps: float = 20.0) -> DeepMimicClip:
    """Uniformly sampled ``first`` then ``second``, which starts where (and facing where) ``first`` ended.

    Over its first ``blend`` frames ``second`` fades in from ``first``'s last pose (root height lerp, rotations
    slerp), so repeating a non-cyclic action has no jump.
    """
    q_yaw = yaw_quat(np.array(float(_heading(first.rotations[-1, 0]) - _heading(second.rotations[0, 0]))))
    rel = second.root_pos - second.root_pos[0] * [1.0, 0.0, 1.0]
    q_b = np.broadcast_to(q_yaw, rel.shape[:-1] + (4,)).copy()
    pos = qrot(q_b, rel) + first.root_pos[-1] * [1.0, 0.0, 1.0]
    rots = second.rotations.copy()
    rots[:, 0] = qmul(q_b, rots[:, 0])
    k = min(blend, len(rots))
    w = (np.arange(k) + 1.0) / (k + 1.0)
    pos[:k] = first.root_pos[-1] * (1 - w[:, None]) + pos[:k] * w[:, None]
    rots[:k] = qslerp(
        np.broadcast_to(first.rotations[-1], rots[:k].shape).copy(),
        rots[:k],
        np.broadcast_to(w[:, None], rots[:k].shape[:2]).copy(),
    )
    n = len(first.times) + len(rots)
    return DeepMimicClip(
        np.arange(n) / fps,
        np.concatenate([first.root_pos, pos]),
        qfix(np.concatenate([first.rotations, rots]), dim=-3),
        False,
    )


def crop(clip: DeepMimicClip, frames: int) -> DeepMimicClip:
    """The first ``frames`` frames of a uniformly sampled clip."""
    if len(clip.times) < frames:
        raise ValueError(f"clip has {len(clip.times)} frames, fewer than the {frames} asked for")
    return replace(clip, times=clip.times[:frames], root_pos=clip.root_pos[:frames], rotations=clip.rotations[:frames])


def extend(
    path: str | Path,
    mode: str,
    hold_start: float = 0.0,
    hold_end: float = 0.0,
    frames: int = CLIP_FRAMES,
    fps: float = 20.0,
) -> tuple[DeepMimicClip, int]:
    """A clip file extended to ``frames`` frames at ``fps`` and the length (frames) of one action in it.

    ``mode``: ``"loop"`` (cyclic clip, looped), ``"straight"`` (looped without turning), ``"repeat"`` (held ``hold_start``/``hold_end`` s before/after,
    then repeated with :func:`append`) or ``"hold"`` (played once, then its last pose is held).
    """
    clip = load_clip(path)
    if mode in ("loop", "straight"):
        if not clip.is_loop:
            raise ValueError(f"{path} is not a looping clip (Loop != 'wrap'); use mode 'repeat' or 'hold'")
        cycle = round(clip.duration * fps)
        looped = loop_clip(clip, -(-frames // cycle) + 1, straight=mode == "straight")
        return crop(resample(looped, fps), frames), cycle
    unit = hold(resample(clip, fps), round(hold_start * fps), round(hold_end * fps), fps)
    if mode == "hold":
        return crop(hold(unit, 0, max(0, frames - len(unit.times)), fps), frames), len(unit.times)
    if mode != "repeat":
        raise ValueError(f"unknown extension mode {mode!r}; use 'loop', 'straight', 'repeat' or 'hold'")
    out = unit
    while len(out.times) < frames:
        out = append(out, unit, fps=fps)
    return crop(out, frames), len(unit.times)


def to_smpl_joints(clip: DeepMimicClip, offsets: dict[str, np.ndarray]) -> np.ndarray:
    """Forward kinematics -> (N, 22, 3) float32 in SMPL joint order and HumanML3D axes (metres)."""
    n = len(clip.times)
    rot = {name: clip.rotations[:, k + 1] for k, (name, _) in enumerate(DOFS)}

    def point(q: np.ndarray, base: np.ndarray, local: np.ndarray) -> np.ndarray:
        return base + qrot(q, np.broadcast_to(np.asarray(local, dtype=np.float64), (n, 3)).copy())

    j = np.zeros((n, 22, 3))
    q_root = clip.rotations[:, 0]
    root = clip.root_pos
    q_chest = qmul(q_root, rot["chest"])
    chest = point(q_root, root, offsets["chest"])
    neck = point(q_chest, chest, offsets["neck"])
    q_neck = qmul(q_chest, rot["neck"])
    j[:, 0] = point(q_root, root, [0.0, PELVIS_ABOVE_HIPS * URDF_SCALE, 0.0])
    j[:, 3] = point(q_root, root, offsets["chest"] * 0.5)
    j[:, 6] = chest
    j[:, 9] = point(q_chest, chest, offsets["neck"] * 0.25)
    j[:, 12] = neck
    j[:, 15] = point(q_neck, neck, np.array(HEAD_POINT) * URDF_SCALE)
    for side, sign, hip, knee, ankle, foot, collar, shoulder, elbow, wrist in (
        ("left", -1.0, 1, 4, 7, 10, 13, 16, 18, 20),
        ("right", 1.0, 2, 5, 8, 11, 14, 17, 19, 21),
    ):
        q_hip = qmul(q_root, rot[f"{side}_hip"])
        j[:, hip] = point(q_root, root, offsets[f"{side}_hip"])
        j[:, knee] = point(q_hip, j[:, hip], offsets[f"{side}_knee"])
        q_knee = qmul(q_hip, rot[f"{side}_knee"])
        j[:, ankle] = point(q_knee, j[:, knee], offsets[f"{side}_ankle"])
        q_ankle = qmul(q_knee, rot[f"{side}_ankle"])
        j[:, foot] = point(q_ankle, j[:, ankle], np.array(FOOT_POINT) * URDF_SCALE)
        cx, cy, cz = COLLAR_POINT
        j[:, collar] = point(q_chest, chest, np.array([cx, cy, sign * cz]) * URDF_SCALE)
        j[:, shoulder] = point(q_chest, chest, offsets[f"{side}_shoulder"])
        q_shoulder = qmul(q_chest, rot[f"{side}_shoulder"])
        j[:, elbow] = point(q_shoulder, j[:, shoulder], offsets[f"{side}_elbow"])
        q_elbow = qmul(q_shoulder, rot[f"{side}_elbow"])
        j[:, wrist] = point(q_elbow, j[:, elbow], offsets[f"{side}_wrist"])
    # DeepMimic (x fwd, y up, z right) -> HumanML3D (x left, y up, z fwd): a proper rotation, no mirroring.
    return fit_template_geometry(np.stack([-j[..., 2], j[..., 1], j[..., 0]], axis=-1))


def convert_clip(
    path: str | Path,
    urdf: str | Path | None = None,
    mode: str = "hold",
    hold_start: float = 0.0,
    hold_end: float = 0.0,
    frames: int = CLIP_FRAMES,
    fps: float = 20.0,
) -> tuple[np.ndarray, int]:
    """:func:`extend` then FK: joints (frames, 22, 3) and the length in frames of one action (cycle) in them."""
    clip, action = extend(path, mode, hold_start, hold_end, frames, fps)
    return to_smpl_joints(clip, urdf_joint_offsets(urdf or default_urdf())), action


def main(argv: list[str] | None = None) -> None:
    """Build the demo dataset: the DeepMimic clips and climbing windows of ``prepare.demo_captions``, with their
    captioned sub-ranges, through ``build_dataset``."""
    import argparse
    import logging
    import math
    import tempfile

    from prepare.build_dataset import SplitFractions, build_dataset
    from prepare.demo_captions import (
        CLIMB_CLIPS,
        CLIMB_KEEP,
        DEMO_CLIPS,
        caption_lines,
        sub_ranges,
    )
    from prepare.holosoma import check_joint_names, convert_take, default_climb_dir
    from utils.skeleton import get_dataset_spec

    parser = argparse.ArgumentParser(description="DeepMimic + climbing clips -> demo dataset in the HumanML3D layout")
    parser.add_argument("--out", default="dataset_demo/HumanML3D", help="dataset folder to create")
    parser.add_argument("--motions_dir", default=None, help="pybullet_data/data/motions (default: installed)")
    parser.add_argument("--urdf", default=None, help="humanoid.urdf (default: installed pybullet_data)")
    parser.add_argument(
        "--climb_dir",
        default=None,
        help="holosoma_retargeting/demo_data/climb (default: installed holosoma-retargeting)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    urdf = Path(args.urdf) if args.urdf else default_urdf()
    motions = Path(args.motions_dir) if args.motions_dir else urdf.parent.parent / "data" / "motions"
    climb = Path(args.climb_dir) if args.climb_dir else default_climb_dir()
    try:
        from holosoma_retargeting.config_types.data_type import MOCAP_DEMO_JOINTS
    except ImportError:
        logging.getLogger(__name__).warning("holosoma_retargeting not importable: joint order not re-checked")
    else:
        check_joint_names(list(MOCAP_DEMO_JOINTS))
    with tempfile.TemporaryDirectory() as tmp:
        for clip in DEMO_CLIPS:
            joints, action = convert_clip(motions / clip.source, urdf, clip.extend, clip.hold_start, clip.hold_end)
            ranges = sub_ranges(clip.clip_id, len(joints) - 1, action, clip.extend)
            np.save(Path(tmp) / f"{clip.clip_id}.npy", joints)
            (Path(tmp) / f"{clip.clip_id}.txt").write_text(caption_lines(clip.captions, ranges))
        for clip in CLIMB_CLIPS:
            joints = convert_take(climb, clip)
            frames = len(joints) - 1
            ranges = sub_ranges(clip.clip_id, frames, 1, "loop", min_length=math.ceil(CLIMB_KEEP * frames))
            np.save(Path(tmp) / f"{clip.clip_id}.npy", joints)
            (Path(tmp) / f"{clip.clip_id}.txt").write_text(caption_lines(clip.captions, ranges))
        # The demo uses the fallback tagger on purpose so that rebuilding it gives identical files everywhere.
        build_dataset(
            tmp,
            args.out,
            get_dataset_spec("t2m"),
            fractions=SplitFractions(val=0.1, test=0.2),
            seed=0,
            use_spacy=False,
            overwrite=args.overwrite,
        )


if __name__ == "__main__":
    from utils.cli import run_cli

    run_cli(main)
