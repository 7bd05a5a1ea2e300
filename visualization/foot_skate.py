"""Optional foot-skate cleanup before BVH export (official ``remove_fs`` rules, spec §7.5), vectorised.

1. Contacts: given (e.g. the foot-contact feature channels) or detected with the official rule.
2. Foot joints are pinned: each run of contact frames takes the run's mean position (on the floor), and up to
   5 frames on either side blend into it with the official cubic ease.
3. Unlike the official code, which only hands the pinned feet to its iterative IK as targets, the legs are
   then re-solved analytically (two-bone IK hip-knee-ankle in the original knee plane, toe re-aimed), so bone
   lengths are kept exactly; and the floor offset is applied to the whole body, root included.
"""
from __future__ import annotations

import numpy as np

from utils.skeleton import DatasetSpec

# The official thresholds are in metres; KIT-ML positions are millimetres.
_UNIT = {"t2m": 1.0, "kit": 1000.0}
VEL_THRESHOLDS = (0.05, 0.2)       # squared per-frame displacement of (ankle, toe), official velfactor
HEIGHT_THRESHOLDS = (0.06, 0.03)   # height of (ankle, toe), official heightfactor


def foot_joints(spec: DatasetSpec) -> tuple[int, int, int, int]:
    """The four contact joints in contact-channel order: (left ankle, left toe, right ankle, right toe)."""
    return (*spec.fid_l, *spec.fid_r)  # type: ignore[return-value]


def detect_contacts(joints: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Official contact rule. joints (T, J, 3) -> (T, 4) bool: squared displacement to the next frame and
    height below the thresholds (the last frame repeats the one before)."""
    unit = _UNIT.get(spec.name, 1.0)
    feet = joints[:, list(foot_joints(spec))]                                 # (T, 4, 3)
    speed = ((feet[1:] - feet[:-1]) ** 2).sum(-1)                             # (T-1, 4)
    vel = np.tile(np.asarray(VEL_THRESHOLDS) * unit ** 2, 2)
    height = np.tile(np.asarray(HEIGHT_THRESHOLDS) * unit, 2)
    contact = (speed < vel) & (feet[:-1, :, 1] < height)
    return np.concatenate([contact, contact[-1:]], axis=0)


def floor_height(joints: np.ndarray, spec: DatasetSpec) -> float:
    """Official floor estimate: mean of the per-frame lowest foot height between its 25 % and 50 % quantiles
    (0 when that exceeds 0.5 m)."""
    lowest = np.sort(joints[:, list(foot_joints(spec)), 1].min(axis=1))
    n = len(lowest)
    part = lowest[int(0.25 * n):int(0.5 * n)]
    floor = float(part.mean()) if len(part) else float(lowest[0])
    return 0.0 if floor > 0.5 * _UNIT.get(spec.name, 1.0) else floor


def _ease(x: np.ndarray) -> np.ndarray:
    return 2 * x ** 3 - 3 * x ** 2 + 1


def pin_track(track: np.ndarray, contact: np.ndarray, interp_length: int = 5, force_on_floor: bool = True
              ) -> np.ndarray:
    """One joint's positions (T, 3) with contact runs held at their mean and the official blend around them."""
    out = track.copy()
    n = len(track)
    if not contact.any():
        return out
    starts = contact & ~np.concatenate([[False], contact[:-1]])
    label = np.cumsum(starts) * contact                                      # 1.. per run, 0 = free
    counts = np.bincount(label, minlength=label.max() + 1)[1:]
    means = np.stack([np.bincount(label, weights=track[:, k])[1:] for k in range(3)], -1) / counts[:, None]
    if force_on_floor:
        means[:, 1] = 0.0
    out[contact] = means[label[contact] - 1]
    idx = np.arange(n)
    left = np.maximum.accumulate(np.where(contact, idx, -1))                 # last contact frame <= t
    right = np.minimum.accumulate(np.where(contact, idx, n)[::-1])[::-1]     # next contact frame >= t
    free = ~contact
    has_l = free & (left >= 0) & (idx - left <= interp_length)
    has_r = free & (right < n) & (right - idx <= interp_length)
    lerp = lambda a, x, y: (1 - a)[:, None] * x + a[:, None] * y  # noqa: E731
    span = interp_length + 1.0
    pl = out[np.clip(left, 0, n - 1)]
    pr = out[np.clip(right, 0, n - 1)]
    l_itp = lerp(_ease((idx - left + 1) / span), track, pl)
    r_itp = lerp(_ease((right - idx + 1) / span), track, pr)
    both = lerp(_ease((idx - left + 1) / np.maximum(right - left + 1, 1)), r_itp, l_itp)
    out[has_l & has_r] = both[has_l & has_r]
    out[has_l & ~has_r] = l_itp[has_l & ~has_r]
    out[has_r & ~has_l] = r_itp[has_r & ~has_l]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray, forward: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """New (knee, ankle) (T, 3) reaching ``target`` from ``hip`` with the original thigh/shin lengths.

    The knee stays in the plane of the original bend (or bends along ``forward`` when the leg was straight);
    out-of-reach targets are approached along the hip -> target line.
    """
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    to_target = target - hip
    d = np.clip(np.linalg.norm(to_target, axis=-1), np.abs(l1 - l2) + 1e-9, l1 + l2 - 1e-9)
    u = _unit(to_target)
    pole = (knee - hip) - ((knee - hip) * u).sum(-1, keepdims=True) * u
    straight = np.linalg.norm(pole, axis=-1) < 1e-6 * np.maximum(l1, 1e-12)
    fallback = forward - (forward * u).sum(-1, keepdims=True) * u
    pole = _unit(np.where(straight[:, None], fallback, pole))
    along = (l1 ** 2 - l2 ** 2 + d ** 2) / (2 * d)
    height = np.sqrt(np.maximum(l1 ** 2 - along ** 2, 0.0))
    new_knee = hip + along[:, None] * u + height[:, None] * pole
    new_ankle = hip + d[:, None] * u
    return new_knee, new_ankle


def clean_foot_skate(joints: np.ndarray, spec: DatasetSpec, contacts: np.ndarray | None = None,
                     interp_length: int = 5, force_on_floor: bool = True) -> np.ndarray:
    """joints (T, J, 3) -> joints with pinned feet and re-solved legs (bone lengths unchanged).

    contacts: (T, 4) (left ankle, left toe, right ankle, right toe), bool or probabilities (> 0.5 = contact);
    None = official detection.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if contacts is None:
        contacts = detect_contacts(joints, spec)
    contacts = np.asarray(contacts)
    if contacts.shape != (joints.shape[0], 4):
        raise ValueError(f"contacts must have shape ({joints.shape[0]}, 4) (l_ankle, l_toe, r_ankle, r_toe), "
                         f"got {contacts.shape}")
    contacts = contacts > 0.5 if contacts.dtype != bool else contacts
    out = joints.copy()
    out[..., 1] -= floor_height(joints, spec)
    parents = spec.parents
    for side, (end, toe) in enumerate((spec.fid_l, spec.fid_r)):
        pinned_end = pin_track(out[:, end], contacts[:, 2 * side], interp_length, force_on_floor)
        pinned_toe = pin_track(out[:, toe], contacts[:, 2 * side + 1], interp_length, force_on_floor)
        mid = parents[end]
        top = parents[mid]
        forward = out[:, toe] - out[:, end]        # knees bend towards the toes when the leg was straight
        new_mid, new_end = two_bone_ik(out[:, top], out[:, mid], out[:, end], pinned_end, forward)
        toe_len = np.linalg.norm(out[:, toe] - out[:, end], axis=-1, keepdims=True)
        out[:, toe] = new_end + toe_len * _unit(pinned_toe - new_end)
        out[:, mid], out[:, end] = new_mid, new_end
    return out
