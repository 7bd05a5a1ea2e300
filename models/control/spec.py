"""Control specifications: where joints of the generated motion must be at given frames.

A :class:`ControlSpec` is an array of targets ``(T, J, 3)`` in metres, NaN = free (a single NaN coordinate
leaves that axis free, e.g. a pelvis path on the ground plane with ``y`` NaN). Coordinates are the global frame
of the generated motion as features -> joints recovers it: Y up, the motion starts with the pelvis over the
origin facing +Z. Built from an array (:func:`targets_from_array`), hand-written keyframes
(:func:`keyframes_from_json`) or joints and frames of another motion (:func:`targets_from_motion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from data.prompts import parse_frame
from models.control.objectives import target_distances
from utils.skeleton import DatasetSpec, spec_from_joint_count

MAX_KEYFRAMES = 10_000


@dataclass(frozen=True)
class ControlSpec:
    """Targets (T, J, 3) float32 metres, NaN = free; ``source`` names where they came from (for messages)."""

    targets: np.ndarray
    source: str = "control"

    def __post_init__(self) -> None:
        t = np.asarray(self.targets, dtype=np.float32)
        if t.ndim != 3 or t.shape[-1] != 3 or t.shape[0] == 0:
            raise ValueError(f"{self.source}: control targets must have shape (frames, joints, 3), got {t.shape}")
        if np.isinf(t).any():
            raise ValueError(f"{self.source}: control targets hold infinite values (use NaN for 'free')")
        if not np.isfinite(t).any():
            raise ValueError(
                f"{self.source}: every control target is NaN, so nothing is controlled (give at least "
                "one finite joint position)"
            )
        object.__setattr__(self, "targets", t)

    @property
    def mask(self) -> np.ndarray:
        """(T, J) bool: joints with at least one controlled coordinate."""
        return np.isfinite(self.targets).any(-1)

    def error(self, joints: np.ndarray) -> float:
        """Mean distance (m) of ``joints`` (T, J, 3) to these targets over the controlled entries of its T frames
        (NaN when none of them is controlled); the figure reported for a written motion."""
        n = min(len(joints), len(self.targets))
        dist, controlled = target_distances(torch.as_tensor(joints[:n]), torch.from_numpy(self.targets[:n]))
        return float(dist[controlled].mean()) if bool(controlled.any()) else float("nan")

    @property
    def last_frame(self) -> int:
        return int(np.nonzero(self.mask.any(-1))[0].max())

    @property
    def joints(self) -> list[int]:
        return np.nonzero(self.mask.any(0))[0].tolist()

    def check(self, spec: DatasetSpec, num_frames: int | None = None) -> ControlSpec:
        """Raise a clear error unless the targets fit ``spec``'s skeleton (and a motion of ``num_frames``)."""
        joints = self.targets.shape[1]
        if joints != spec.joints_num:
            try:
                other = f" (a {spec_from_joint_count(joints).name} skeleton)"
            except ValueError:
                other = ""
            raise ValueError(
                f"{self.source}: control targets have {joints} joints{other} but the model's dataset "
                f"{spec.name} has {spec.joints_num}"
            )
        if num_frames is not None and self.last_frame >= num_frames:
            raise ValueError(
                f"{self.source}: frame {self.last_frame} is controlled but the motion has {num_frames} "
                f"frames (0..{num_frames - 1}); lengthen it (--motion_length) or move the target"
            )
        return self

    def padded(self, num_frames: int) -> np.ndarray:
        """Targets cut or NaN-padded to ``num_frames`` rows (only free rows may be cut)."""
        t = self.targets[:num_frames]
        if t.shape[0] < num_frames:
            t = np.concatenate([t, np.full((num_frames - t.shape[0], *t.shape[1:]), np.nan, np.float32)])
        return t

    def describe(self, spec: DatasetSpec) -> str:
        frames = int(self.mask.any(-1).sum())
        names = [spec.joint_names[j] for j in self.joints]
        return f"{len(names)} joint(s) ({', '.join(names[:6])}{'...' if len(names) > 6 else ''}) at {frames} frame(s)"


def targets_from_array(arr: np.ndarray, spec: DatasetSpec, source: str = "control") -> ControlSpec:
    """A ``(T, J, 3)`` array of targets (NaN = free) checked against ``spec``."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{source}: control targets must be numbers, got dtype {arr.dtype}")
    return ControlSpec(arr.astype(np.float32), source).check(spec)


def _keyframe_position(value: Any, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{where}: 'position' must be [x, y, z] in metres (null for a free axis), got {value!r}")
    out = []
    for v in value:
        if v is None:
            out.append(float("nan"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            out.append(float(v))
        else:
            raise ValueError(f"{where}: 'position' entries must be finite numbers or null, got {v!r}")
    return out


def keyframes_from_json(data: Any, spec: DatasetSpec, total_frames: int, source: str = "control") -> ControlSpec:
    """``[{"joint": "pelvis"|index, "frame": 40|"2s"|0.5, "position": [x, y, z]}, ...]`` (or ``{"keyframes": [...]}``)
    -> targets of ``total_frames`` rows. Frames are frames, seconds or fractions of ``total_frames``."""
    items = data.get("keyframes") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError(
            f"{source}: expected a non-empty list of keyframes like "
            '[{"joint": "pelvis", "frame": "2s", "position": [0, 0.9, 1.5]}]'
        )
    if len(items) > MAX_KEYFRAMES:
        raise ValueError(f"{source}: {len(items)} keyframes; the limit is {MAX_KEYFRAMES}")
    targets = np.full((total_frames, spec.joints_num, 3), np.nan, np.float32)
    for k, item in enumerate(items):
        where = f"{source} keyframe {k}"
        if not isinstance(item, dict) or set(item) - {"joint", "frame", "position"} or "position" not in item:
            raise ValueError(f'{where}: expected {{"joint": ..., "frame": ..., "position": [x, y, z]}}, got {item!r}')
        try:
            joint = spec.joint_index(item.get("joint", 0))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        frame = item.get("frame", 0)
        if isinstance(frame, bool) or not isinstance(frame, (int, str)):
            raise ValueError(f'{where}: \'frame\' must be a frame number, seconds ("2.5s") or a fraction ("0.5")')
        frame = frame if isinstance(frame, int) else parse_frame(frame, total_frames, spec.fps, where)
        if not 0 <= frame < total_frames:
            given = "" if isinstance(item.get("frame", 0), int) else f" ({item['frame']!r})"
            raise ValueError(
                f"{where}: frame {frame}{given} is outside the motion's {total_frames} frames: use 0..{total_frames - 1} "
                f"(0-{(total_frames - 1) / spec.fps:.2f} s)"
            )
        targets[frame, joint] = _keyframe_position(item["position"], where)
    return ControlSpec(targets, source).check(spec)


def parse_joints(text: str | Sequence[str | int], spec: DatasetSpec, where: str = "--control_joints") -> list[int]:
    """``"pelvis,left_wrist"``, ``"0,20"`` or ``"all"`` -> sorted joint indices."""
    items = [s for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
    if not items or (len(items) == 1 and str(items[0]).strip().lower() == "all"):
        return list(range(spec.joints_num))
    try:
        return sorted({spec.joint_index(j) for j in items})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def parse_frames(text: str, total_frames: int, fps: float, where: str = "--control_frames") -> list[int]:
    """``"all"`` or ``"0,40,2s,0.5"`` (frames, seconds, fractions of ``total_frames``) -> frame numbers."""
    if text.strip().lower() in ("", "all"):
        return list(range(total_frames))
    frames = [parse_frame(part, total_frames, fps, where) for part in text.split(",")]
    bad = [f for f in frames if not 0 <= f < total_frames]
    if bad:
        raise ValueError(f"{where}: frame(s) {bad} are outside 0..{total_frames - 1}")
    return frames


def targets_from_motion(
    joints: np.ndarray,
    spec: DatasetSpec,
    joint_ids: Sequence[int],
    frames: Sequence[int],
    at: Sequence[int] | None = None,
    total_frames: int | None = None,
    source: str = "control motion",
) -> ControlSpec:
    """Joints ``joint_ids`` of ``frames`` of a motion (T, J, 3), already in the generated motion's frame, placed at
    frames ``at`` of the new motion (default: the same frames; one value shifts them all)."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (spec.joints_num, 3):
        raise ValueError(f"{source}: expected joints (T, {spec.joints_num}, 3) for {spec.name}, got {joints.shape}")
    frames = list(frames)
    if not frames or not joint_ids:
        raise ValueError(f"{source}: choose at least one joint and one frame to control")
    bad = [f for f in frames if not 0 <= f < joints.shape[0]]
    if bad:
        raise ValueError(f"{source}: frame(s) {bad[:5]} are outside its {joints.shape[0]} frames")
    at = frames if at is None else list(at)
    if len(at) == 1 and len(frames) > 1:
        at = [f - frames[0] + at[0] for f in frames]
    if len(at) != len(frames):
        raise ValueError(f"{source}: {len(frames)} source frames but {len(at)} destination frames")
    if min(at) < 0:
        raise ValueError(f"{source}: destination frame {min(at)} is before the start of the motion")
    total = max(at) + 1 if total_frames is None else total_frames
    if max(at) >= total:
        raise ValueError(f"{source}: destination frame {max(at)} is outside the motion's {total} frames")
    targets = np.full((total, spec.joints_num, 3), np.nan, np.float32)
    ids = list(joint_ids)
    targets[np.asarray(at)[:, None], np.asarray(ids)[None, :]] = joints[
        np.asarray(frames)[:, None], np.asarray(ids)[None, :]
    ]
    return ControlSpec(targets, source).check(spec)
