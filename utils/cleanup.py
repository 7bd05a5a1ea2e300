"""Physical clean-up of a joints motion: less jitter and foot skating, same motion. Pure NumPy, no state.

``cleanup_motion(joints, spec)`` runs four vectorised steps (loops over bones and contact runs, never frames):

1. **Temporal filter on the skeleton**: every joint's trajectory is Gaussian filtered over time, then the
   skeleton is rebuilt root-first along the filtered bone directions with the bone lengths low-passed over time
   (length wobble below ``length_tolerance``, float rounding of a rigid skeleton, is kept, so a rigid motion
   keeps its exact lengths). The filter width adapts per joint and frame: slow joints get ``sigma_slow``,
   joints faster than ``fast_speed`` m/s (kicks, punches, jump take-offs) get ``sigma_fast``, so jitter goes
   and intended fast motion keeps its peaks.
2. **Floor snapping**: one vertical offset per frame lifts the lowest joint out of the floor (y = 0) on frames
   that should be in contact (:func:`utils.physical.contact_frames`; with a finite ``float_tolerance`` it also
   pulls a body floating higher than that down), puts a body hovering near it back on it (off the floor for
   0.25 s or more without falling, :func:`utils.physical.hover_frames`, and landable: :func:`_landable_hovers`),
   is interpolated across flight phases (jumps keep their arc) and smoothed. A body standing on something
   (boxes, stairs) is left there.
3. **Contacts with hysteresis** per foot joint (ankle, toe of each side): a contact starts when the joint is low
   and slow (``*_on`` thresholds) and lasts while it stays within the looser ``*_off`` thresholds; runs shorter
   than ``min_run`` frames are dropped.
4. **Foot locking + analytic leg IK**: during a contact run the joint is held at the run's mean horizontal
   position; the correction eases in and out over ``blend`` frames around the run. Where a held ankle would be
   further from the hip than the leg reaches (a foot that slid far), it is held as far as the leg reaches and
   slides the rest (:func:`within_reach`), so it stays on the floor. The hip-knee-ankle chain is
   re-solved with two-bone IK in the knee's own bend plane (thigh and shin lengths exact) and the foot bone is
   re-aimed at the (locked or rigidly carried) toe with its length kept.

Input and output: ``(T, J, 3)`` in dataset units (metres for t2m, millimetres for kit), Y up, floor at 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from utils.kinematics import gaussian_smooth
from utils.motion import extract_features, recover_from_ric, recover_root_rot_pos
from utils.physical import (
    METRES_PER_UNIT,
    contact_frames,
    foot_joints,
    hover_frames,
    min_flight_frames,
    supported_frames,
    true_runs,
)
from utils.quaternion import qrot
from utils.skeleton import DatasetSpec


@dataclass(frozen=True)
class CleanupConfig:
    """Tuning of :func:`cleanup_motion` (metres, seconds, frames at the motion's fps)."""

    sigma_slow: float = 0.7  # frames: Gaussian width for slowly moving bones
    sigma_fast: float = 0.5  # frames: width for bones swinging faster than fast_speed
    fast_speed: float = 4.0  # m/s: joints faster than this (kicks, punches, jumps) get sigma_fast
    fast_window: int = 2  # frames either side whose speed counts for a frame
    ankle_on: float = 0.12  # m: ankle height that can start a contact
    ankle_off: float = 0.16  # m: ankle height that ends it
    toe_on: float = 0.06  # m
    toe_off: float = 0.09  # m
    speed_on: float = 0.9  # m/s horizontal: starts a contact
    speed_off: float = 1.4  # m/s: ends it
    min_run: int = 2  # frames
    max_foot_turn: float = 35.0  # degrees the foot bone may turn to reach a locked toe
    blend: int = 3  # frames of ease-in/out of the lock correction
    floor_sigma: float = 2.0  # frames: smoothing of the floor offset
    float_tolerance: float = float("inf")  # m: contact frames floating higher are pulled down (inf: never)
    land_hovers: bool = True  # bring a body down that stays off the floor without falling (not a flight)
    max_landing: float = 0.3  # m: hovers that would be lowered further are left (see _landable_hovers)
    lift: bool = False  # finally lift the whole body where a hand or knee is below the floor
    length_sigma: float = 1.5  # frames: >0 low-passes the bone lengths instead of the constant median
    length_tolerance: float = 1e-5  # m: per-frame length changes this small are rounding, kept as they are
    rigid: bool = True  # bone lengths = each bone's median over the motion (False: every frame's own)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 (edges replicated). x: (T, ...) float64."""
    if sigma <= 0:
        return x
    return gaussian_smooth(torch.from_numpy(np.ascontiguousarray(x)), sigma, dim=0).numpy()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep 0 -> 1 on [0, 1] (clipped)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bone_order(spec: DatasetSpec) -> list[tuple[int, int]]:
    """(parent, child) pairs root-first (each parent placed before its children)."""
    return [(p, c) for chain in spec.chains for p, c in itertools.pairwise(chain)]


def _adaptive_smooth(x: np.ndarray, fps: float, config: CleanupConfig) -> np.ndarray:
    """Per joint and frame, blend of a wide and a narrow Gaussian filter by the joint's smoothed speed
    (narrow where it moves faster than ``fast_speed`` m/s). x: (T, J, 3) -> (T, J, 3)."""
    slow = _smooth(x, config.sigma_slow)
    fast = _smooth(x, config.sigma_fast)
    speed = np.linalg.norm(np.gradient(slow, axis=0), axis=-1) * fps  # (T, J)
    # The turning point of a kick is slow: it inherits the speed of the frames around it.
    r = config.fast_window
    speed = np.lib.stride_tricks.sliding_window_view(
        np.pad(speed, ((r, r), (0, 0)), mode="edge"), 2 * r + 1, axis=0
    ).max(axis=-1)
    w = _ease(speed / config.fast_speed)[..., None]
    return (1.0 - w) * slow + w * fast


def project_bone_lengths(x: np.ndarray, spec: DatasetSpec, length: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Positions (T, J, 3) -> positions whose bones (in :func:`_bone_order`) have exactly ``length`` (T, B).

    ``iterations`` Jacobi passes move both ends of every bone half-way to its length, averaged over the bones
    meeting at a joint (so corrections spread over the skeleton instead of piling up at the hands and feet);
    then the skeleton is rebuilt root-first along the projected directions, which makes the lengths exact. The
    bones leaving a joint with several children (pelvis -> hips and spine, chest -> neck and collars) keep the
    directions of ``x`` instead: the passes would move the hips and collars apart, and a BVH, with one rotation
    per joint, can follow such a group only as far as it keeps its shape."""
    bones = _bone_order(spec)
    parents, children = [p for p, _ in bones], [c for _, c in bones]
    incidence = np.zeros((spec.joints_num, len(bones)))
    incidence[parents, np.arange(len(bones))] = 1.0
    incidence[children, np.arange(len(bones))] = -1.0
    incidence /= np.abs(incidence).sum(axis=1, keepdims=True)
    given = x
    x = x.copy()
    for _ in range(iterations):
        v = x[:, children] - x[:, parents]  # (T, B, 3)
        d = np.linalg.norm(v, axis=-1, keepdims=True)
        corr = 0.5 * (d - length[..., None]) * v / np.maximum(d, 1e-12)
        x += incidence @ corr  # (J, B) @ (T, B, 3)
    branch = {p for p in parents if parents.count(p) > 1}
    out = np.empty_like(x)
    out[:, 0] = x[:, 0]
    for b, (p, c) in enumerate(bones):
        along = given if p in branch else x  # bones leaving a branch joint keep their given directions
        out[:, c] = out[:, p] + length[:, b, None] * _unit(along[:, c] - along[:, p])
    return out


def smooth_skeleton(joints: np.ndarray, spec: DatasetSpec, fps: float, config: CleanupConfig) -> np.ndarray:
    """Step 1: adaptive temporal filter, then bones back to their lengths. joints: (T, J, 3) metres."""
    bones = _bone_order(spec)
    parents, children = [p for p, _ in bones], [c for _, c in bones]
    length = np.linalg.norm(joints[:, children] - joints[:, parents], axis=-1)  # (T, B)
    smoothed = _adaptive_smooth(joints, fps, config)
    if not config.rigid:
        out = np.empty_like(joints)
        out[:, 0] = smoothed[:, 0]
        for b, (p, c) in enumerate(bones):
            out[:, c] = out[:, p] + length[:, b, None] * _unit(smoothed[:, c] - smoothed[:, p])
        return out
    if config.length_sigma > 0:
        # Low-pass the length jitter beyond ``length_tolerance``; smaller wobble (float32 rounding of a rigid
        # skeleton, ~1e-6 m) stays, so a rigid motion keeps its exact per-frame lengths.
        low = _smooth(length, config.length_sigma)
        tol = config.length_tolerance
        target = low + np.clip(length - low, -tol, tol)
    else:
        target = np.broadcast_to(np.median(length, axis=0), length.shape)
    return project_bone_lengths(smoothed, spec, target)


def snap_to_floor(joints: np.ndarray, spec: DatasetSpec, fps: float, config: CleanupConfig) -> np.ndarray:
    """Step 2: one vertical offset per frame. Where the feet should be in contact the lowest joint is brought
    into [0, ``float_tolerance``] (lifted out of the floor, or pulled down when floating higher); with
    ``land_hovers``, a body hovering off the floor (:func:`utils.physical.hover_frames`: it does not fall, so
    something must hold it up) that could plant a foot or hand (:func:`_landable_hovers`) is lowered by
    :func:`hover_landing`, onto the floor at least once in every :data:`utils.physical.MIN_FLIGHT`. The offset
    is interpolated across the other frames (flights keep their arc) and smoothed."""
    lowest = joints[..., 1].min(axis=1)  # (T,)
    feet = foot_joints(spec)
    contact = contact_frames(joints, feet, fps)
    frames = np.arange(len(joints))
    wanted = np.clip(lowest, 0.0, config.float_tolerance) - lowest
    hover = _landable_hovers(joints, spec, fps, config) if config.land_hovers else np.zeros_like(contact)
    contact &= ~hover
    wanted[hover] = hover_landing(lowest, hover, fps)[hover]
    known = contact | hover
    if not known.any():
        return joints
    offset = _smooth(np.interp(frames, frames[known], wanted[known]), config.floor_sigma)
    out = joints.copy()
    out[..., 1] += offset[:, None]
    return out


def _landable_hovers(joints: np.ndarray, spec: DatasetSpec, fps: float, config: CleanupConfig) -> np.ndarray:
    """(T,) bool: the runs of :func:`utils.physical.hover_frames` that the clean-up lands. Only a hover near the
    floor that nothing could be holding up and that a planted limb could hold: :func:`hover_landing` lowers no
    frame by more than ``max_landing``; a foot rests (:func:`utils.physical.supported_frames`) on fewer than
    half of its frames (on more, as :func:`utils.physical.hover_frames` has it for a second or longer, it may
    stand on something); on most of them a foot joint or a hand (the end of an arm chain) moves slower than
    ``speed_on`` horizontally. Left: bodies high up without falling (a flip with the wrong physics, which
    lowering would not fix), a body that may stand on a box, and one gliding with every limb end fast (a run
    whose feet never stop would slide along the floor instead of floating above it)."""
    feet = foot_joints(spec)
    hover = hover_frames(joints, feet, fps)
    supported = supported_frames(joints, feet, fps)
    depth = -hover_landing(joints[..., 1].min(axis=1), hover, fps)
    ends = [*feet, *_arm_ends(spec)]
    speed = np.linalg.norm(np.gradient(joints[:, ends][..., [0, 2]], axis=0), axis=-1) * fps  # (T, ends)
    plantable = (speed < config.speed_on).any(axis=1)
    for s, e in true_runs(hover):
        near = depth[s:e].max() <= config.max_landing
        hover[s:e] = near and supported[s:e].mean() < 0.5 and plantable[s:e].mean() > 0.5
    return hover


def hover_landing(lowest: np.ndarray, hover: np.ndarray, fps: float) -> np.ndarray:
    """(T,) vertical offset (<= 0, m) that lands each run of ``hover`` frames: minus the lowest joint height
    ``lowest`` (T,) at its lowest in a window of :data:`utils.physical.MIN_FLIGHT` centred on each frame (inside
    the run). The body then touches the floor at least once in every such window, so no stretch off the floor
    is long enough to hover, and what it does between (strides, a short hop) keeps its shape instead of being
    pressed flat onto the floor; 0 elsewhere."""
    half = (min_flight_frames(fps) - 1) // 2  # 2 frames either side at 20 fps: 5-frame windows
    offset = np.zeros_like(lowest)
    for s, e in true_runs(hover):
        run = lowest[s:e]
        windows = [run[max(0, t - half) : t + half + 1].min() for t in range(e - s)]
        offset[s:e] = -np.asarray(windows)
    return offset


def lift_out_of_floor(joints: np.ndarray, sigma: float) -> np.ndarray:
    """Smallest smooth per-frame lift leaving no joint below y = 0: the needed lift is widened by a running
    maximum over ±2σ frames, Gaussian smoothed, and topped up exactly where that is still short."""
    need = np.maximum(0.0, -joints[..., 1].min(axis=1))  # (T,)
    if not need.any():
        return joints
    r = int(np.ceil(2 * sigma))
    padded = np.pad(need, r, mode="edge")
    widened = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1).max(axis=1)
    lift = np.maximum(_smooth(widened, sigma), need)
    out = joints.copy()
    out[..., 1] += lift[:, None]
    return out


def detect_contacts(
    joints: np.ndarray, spec: DatasetSpec, fps: float, config: CleanupConfig = CleanupConfig()
) -> np.ndarray:
    """Step 3: (T, 4) bool contacts of (left ankle, left toe, right ankle, right toe) with hysteresis.

    joints: (T, J, 3) metres, floor at 0. Speed is the horizontal central-difference speed."""
    feet = joints[:, list(foot_joints(spec))]  # (T, 4, 3)
    xz = feet[..., [0, 2]]
    speed = np.linalg.norm(np.gradient(xz, axis=0), axis=-1) * fps  # (T, 4)
    height = feet[..., 1]
    on_h = np.array([config.ankle_on, config.toe_on] * 2)
    off_h = np.array([config.ankle_off, config.toe_off] * 2)
    start = (height < on_h) & (speed < config.speed_on)
    keep = (height < off_h) & (speed < config.speed_off)
    contact = np.zeros_like(start)
    state = np.zeros(4, dtype=bool)
    for t in range(len(feet)):  # T x 4 booleans: cheap
        state = start[t] | (state & keep[t])
        contact[t] = state
    for k in range(4):
        contact[:, k] = _drop_short_runs(contact[:, k], config.min_run)
    return contact


def _drop_short_runs(mask: np.ndarray, min_run: int) -> np.ndarray:
    out = mask.copy()
    for s, e in true_runs(mask):
        if e - s < min_run:
            out[s:e] = False
    return out


def lock_offsets(track: np.ndarray, contact: np.ndarray, blend: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 4 targets for one joint: horizontal correction (T, 3) holding each contact run at its mean xz,
    eased in/out over ``blend`` frames, and the lock weight (T,) in [0, 1]."""
    n = len(track)
    offset = np.zeros((n, 3))
    weight = np.zeros(n)
    frames = np.arange(n)
    for s, e in true_runs(contact):
        correction = np.zeros((e - s, 3))
        correction[:, [0, 2]] = track[s:e, [0, 2]].mean(axis=0) - track[s:e, [0, 2]]
        # Ease: 1 inside the run, falling to 0 over `blend` frames on each side, holding the boundary value.
        dist = np.maximum(s - frames, frames - (e - 1)).clip(min=0)
        w = 1.0 - _ease(dist / (blend + 1.0))
        held = correction[np.clip(frames - s, 0, e - s - 1)]
        take = w > weight  # nearer run wins where two overlap
        offset[take] = (w[:, None] * held)[take]
        weight[take] = w[take]
    return offset, weight


def two_bone_ik(
    hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray, forward: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """New (knee, ankle) (T, 3) reaching ``target`` from ``hip`` with each frame's thigh/shin lengths.

    The knee stays in the plane of the original bend (it bends along ``forward`` where the leg was straight);
    out-of-reach targets are approached along the hip -> target line."""
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    to_target = target - hip
    d = np.clip(np.linalg.norm(to_target, axis=-1), np.abs(l1 - l2) + 1e-9, l1 + l2 - 1e-9)
    u = _unit(to_target)
    pole = (knee - hip) - ((knee - hip) * u).sum(-1, keepdims=True) * u
    straight = np.linalg.norm(pole, axis=-1) < 1e-6 * np.maximum(l1, 1e-12)
    fallback = forward - (forward * u).sum(-1, keepdims=True) * u
    pole = _unit(np.where(straight[:, None], fallback, pole))
    along = (l1**2 - l2**2 + d**2) / (2 * d)
    height = np.sqrt(np.maximum(l1**2 - along**2, 0.0))
    return hip + along[:, None] * u + height[:, None] * pole, hip + d[:, None] * u


def within_reach(hip: np.ndarray, start: np.ndarray, target: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Targets (T, 3) moved horizontally towards ``start`` (T, 3), at their own height, until they are at most
    ``reach`` (T,) from ``hip`` (T, 3): a foot locked further than the leg reaches slides the rest of the way
    instead of being pulled off the floor along the hip -> target line. Reachable targets are returned as they
    are; where no point between start and target is in reach, the start's horizontal position (at the target's
    height)."""
    flat = [0, 2]
    radius2 = reach**2 - (hip[:, 1] - target[:, 1]) ** 2  # squared horizontal reach at the target's height
    p = start[:, flat] - hip[:, flat]
    d = target[:, flat] - start[:, flat]
    pd, dd = (p * d).sum(-1), (d * d).sum(-1)
    disc = pd**2 - dd * ((p * p).sum(-1) - radius2)
    far = np.divide(-pd + np.sqrt(np.maximum(disc, 0.0)), dd, out=np.zeros_like(dd), where=dd > 0)
    s = np.where(((p + d) ** 2).sum(-1) <= radius2, 1.0, np.where(disc >= 0, np.clip(far, 0.0, 1.0), 0.0))
    out = target.copy()
    out[:, flat] = start[:, flat] + s[:, None] * d
    return out


def _turn_towards(a: np.ndarray, b: np.ndarray, max_angle: float) -> np.ndarray:
    """Unit vectors (T, 3): ``b`` where it is within ``max_angle`` (rad) of ``a``, else ``a`` turned that far
    towards ``b`` (in their common plane)."""
    angle = np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0))
    ortho = _unit(b - (a * b).sum(-1, keepdims=True) * a)
    step = np.minimum(angle, max_angle)[:, None]
    return np.where((angle <= max_angle)[:, None], b, np.cos(step) * a + np.sin(step) * ortho)


def _above_floor(direction: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Unit directions (T, 3) tilted up just enough that a bone of length 1 from ``height`` (T,) (in bone
    lengths) ends on or above y = 0; the horizontal heading is kept."""
    y = np.maximum(direction[:, 1], -np.clip(height, 0.0, 1.0))
    flat = direction[:, [0, 2]]
    scale = np.sqrt(np.maximum(1.0 - y**2, 0.0)) / np.maximum(np.linalg.norm(flat, axis=-1), 1e-12)
    return np.stack([flat[:, 0] * scale, y, flat[:, 1] * scale], axis=-1)


def lock_feet(joints: np.ndarray, spec: DatasetSpec, contacts: np.ndarray, config: CleanupConfig) -> np.ndarray:
    """Step 4: feet held during contacts, legs re-solved (bone lengths exact). joints (T, J, 3) metres."""
    out = joints.copy()
    parents = spec.parents
    for side, (ankle, toe) in enumerate((spec.fid_l, spec.fid_r)):
        knee = parents[ankle]
        hip = parents[knee]
        ankle_off, _ = lock_offsets(joints[:, ankle], contacts[:, 2 * side], config.blend)
        toe_off, toe_w = lock_offsets(joints[:, toe], contacts[:, 2 * side + 1], config.blend)
        foot = joints[:, toe] - joints[:, ankle]
        ankle_target = joints[:, ankle] + ankle_off
        ankle_target[:, 1] = np.maximum(ankle_target[:, 1], 0.0)  # out of the floor
        leg = np.linalg.norm(joints[:, knee] - joints[:, hip], axis=-1) + np.linalg.norm(
            joints[:, ankle] - joints[:, knee], axis=-1
        )
        ankle_target = within_reach(joints[:, hip], joints[:, ankle], ankle_target, leg)
        new_knee, new_ankle = two_bone_ik(joints[:, hip], joints[:, knee], joints[:, ankle], ankle_target, foot)
        # A free toe is carried rigidly by the ankle; a locked one stays on its own target.
        toe_target = joints[:, toe] + toe_off + (1.0 - toe_w)[:, None] * (new_ankle - joints[:, ankle])
        toe_target[:, 1] = np.maximum(toe_target[:, 1], 0.0)
        out[:, knee], out[:, ankle] = new_knee, new_ankle
        foot_len = np.linalg.norm(foot, axis=-1)
        aim = _turn_towards(_unit(foot), _unit(toe_target - new_ankle), np.deg2rad(config.max_foot_turn))
        out[:, toe] = new_ankle + foot_len[:, None] * _above_floor(aim, new_ankle[:, 1] / np.maximum(foot_len, 1e-12))
    return out


def _arm_ends(spec: DatasetSpec) -> list[int]:
    """The hands: end joints of the kinematic chains that are not legs and have an upper and a lower arm."""
    legs = {*spec.fid_l, *spec.fid_r}
    return [chain[-1] for chain in spec.chains if chain[-1] not in legs and len(chain) >= 4]


def hands_out_of_floor(joints: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Arms whose end joint is below the floor are re-solved with :func:`two_bone_ik` onto y = 0 (the end joint
    lifted straight up; upper/lower arm lengths kept). joints (T, J, 3) metres."""
    out = joints.copy()
    parents = spec.parents
    for end in _arm_ends(spec):
        mid, top = parents[end], parents[parents[end]]
        low = out[:, end, 1] < 0.0
        if not low.any():
            continue
        target = out[low, end].copy()
        target[:, 1] = 0.0
        fwd = out[low, end] - out[low, mid]
        out[low, mid], out[low, end] = two_bone_ik(out[low, top], out[low, mid], out[low, end], target, fwd)
    return out


def cleanup_motion(
    joints: np.ndarray, spec: DatasetSpec, fps: float | None = None, config: CleanupConfig = CleanupConfig()
) -> np.ndarray:
    """joints (T, J, 3) in dataset units -> cleaned joints, same shape and dtype, same bone lengths per frame.

    Needs T >= 4 finite frames (ValueError otherwise)."""
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[1:] != (spec.joints_num, 3):
        raise ValueError(f"{spec.name} joints must have shape (T, {spec.joints_num}, 3), got {joints.shape}")
    if joints.shape[0] < 4:
        raise ValueError(f"the clean-up needs at least 4 frames, got {joints.shape[0]}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    fps = spec.fps if fps is None else fps
    unit = METRES_PER_UNIT.get(spec.name, 1.0)
    x = joints.astype(np.float64) * unit
    x = smooth_skeleton(x, spec, fps, config)
    x = snap_to_floor(x, spec, fps, config)
    x = lock_feet(x, spec, detect_contacts(x, spec, fps, config), config)
    x = hands_out_of_floor(x, spec)
    if config.lift:
        x = lift_out_of_floor(x, config.floor_sigma)
    return (x / unit).astype(joints.dtype)


def cleaned_features(features: np.ndarray, cleaned: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """The features (T, D) of the cleaned joints (T, J, 3) of the motion ``raw = recover_from_ric(features)``,
    in the model's own facing frames (its root rotation channel is kept). -> (T, D) float32.

    Position channels (root height, root velocity, ``ric``) are those of ``cleaned``, so the result decodes to
    ``cleaned`` (less its frame-0 root offset). The rotation (6D) and local-velocity channels are the model's own
    predictions, not functions of its joints (re-extracting every channel from the joints moves the demo
    evaluator's FID from 2.1 to 6.8 with no clean-up at all, README "Physical quality"), so they get the
    clean-up's change added: the change of the dataset's 6D joint rotations (``extract_features``, the motion's
    own bone lengths) and of the joint displacements. Contacts are the cleaned joints'."""
    j = spec.joints_num
    feats = torch.as_tensor(np.asarray(features, dtype=np.float64))
    raw = recover_from_ric(feats, j)
    clean = torch.as_tensor(np.asarray(cleaned, dtype=np.float64))
    if clean.shape != raw.shape:
        raise ValueError(f"cleaned joints {tuple(clean.shape)} do not match the features' motion {tuple(raw.shape)}")
    r_rot, _ = recover_root_rot_pos(feats)  # (T, 4) world -> facing
    clean = clean - clean[:1, :1] * clean.new_tensor([1.0, 0.0, 1.0])  # frame-0 root over the origin
    root = clean[:, 0]
    out = feats.clone()
    out[:-1, 1:3] = qrot(r_rot[1:], root[1:] - root[:-1])[:, [0, 2]]  # root velocity in the next frame's facing
    out[:, 3] = root[:, 1]
    ric = qrot(r_rot[:, None], clean[:, 1:] - root[:, None] * clean.new_tensor([1.0, 0.0, 1.0]))
    sl = spec.feature_slices
    out[:, sl["ric"]] = ric.flatten(1)

    def extract(x: np.ndarray) -> np.ndarray:
        return extract_features(np.concatenate([x, x[-1:]]), spec, is_uniform=False)

    f_clean, f_raw = extract(clean.numpy()), extract(raw.numpy())
    rot6d, vel, contact = sl["rot6d"], sl["local_vel"], sl["foot_contact"]
    out[:, rot6d] += torch.from_numpy(f_clean[:, rot6d] - f_raw[:, rot6d])
    step = (clean[1:] - clean[:-1]) - (raw[1:] - raw[:-1])  # (T-1, J, 3)
    out[:-1, vel] += qrot(r_rot[:-1, None], step).flatten(1)
    out[:, contact] = torch.from_numpy(f_clean[:, contact])
    return out.numpy().astype(np.float32)


def pin_to_targets(joints: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """joints (T, J, 3) -> the same body translated, frame by frame, so that its controlled joints are back on
    ``targets`` (T', J, 3), NaN = free (a control's targets, in the joints' frame and unit).

    On each axis the translation at a frame with targets is the mean residual of that frame's targets on the
    axis; between such frames it is interpolated linearly, before the first and after the last it is held. A
    translation moves every joint of a frame alike, so bone lengths stay and a single controlled joint per
    frame (a path) lands exactly on its target; the clean-up's own changes (smoothing, floor, foot locks) stay
    elsewhere, shifted by what the pin costs (millimetres after a control)."""
    n = min(len(joints), len(targets))
    residual = targets[:n] - joints[:n]  # NaN where free
    offset = np.zeros((len(joints), 3))
    frames = np.arange(len(joints))
    for axis in range(3):
        r = residual[..., axis]
        at = np.nonzero(np.isfinite(r).any(-1))[0]  # frames with a target on this axis
        if len(at):
            offset[:, axis] = np.interp(frames, at, np.nanmean(r[at], axis=-1))
    return (joints + offset[:, None, :]).astype(joints.dtype)


def cleanup_at_origin(
    joints: np.ndarray,
    spec: DatasetSpec,
    config: CleanupConfig = CleanupConfig(),
    targets: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`cleanup_motion` of a decoded motion, moved horizontally so its frame-0 root is over the origin
    again (as every motion decoded from features starts; the clean-up's filters can move it by millimetres);
    with a control's ``targets`` (T', J, 3), NaN = free, then :func:`pin_to_targets` so the clean-up does not
    undo the control."""
    cleaned = cleanup_motion(joints, spec, config=config)
    cleaned = (cleaned - cleaned[:1, :1] * np.array([1.0, 0.0, 1.0], dtype=cleaned.dtype)).astype(cleaned.dtype)
    return cleaned if targets is None else pin_to_targets(cleaned, targets)


def cleanup_with_features(
    features: np.ndarray,
    joints: np.ndarray,
    spec: DatasetSpec,
    config: CleanupConfig = CleanupConfig(),
    targets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The clean-up of a generated motion, features and joints together: ``joints`` (T, J, 3), what
    ``recover_from_ric(features)`` gives, become :func:`cleanup_at_origin` of them (``targets``: a control's,
    kept) and the features :func:`cleaned_features` of those. -> (features (T, D) float32, joints (T, J, 3) in
    ``joints``' dtype); the features decode to the joints (float32 rounding)."""
    cleaned = cleanup_at_origin(joints, spec, config, targets)
    return cleaned_features(features, cleaned, spec), cleaned
