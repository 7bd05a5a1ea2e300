"""Control files of gen_t2m/edit_t2m/the web demo -> :class:`models.control.ControlSpec` (all checked up front).

* ``.json``: keyframes ``[{"joint": "pelvis"|index, "frame": 40|"2s"|0.5, "position": [x, y, z]}, ...]``;
* ``.npy`` holding NaN: targets ``(T, J, 3)`` in metres, NaN = free;
* a whole motion (``.bvh`` of this project's rig, joints or features ``.npy`` without NaN): the joints
  ``joints`` (default pelvis) of ``frames`` (default all), placed at frames ``at`` (default the same).
  The motion is first put in the generated motion's frame (its first frame over the origin facing +Z, on
  this dataset's skeleton), as features -> joints recovers it.

Coordinates are always the generated motion's global frame: Y up, metres, start over the origin facing +Z.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.control.spec import (
    ControlSpec,
    keyframes_from_json,
    parse_frames,
    parse_joints,
    targets_from_array,
    targets_from_motion,
)
from utils.motion import extract_features_with_positions, recover_from_ric
from utils.skeleton import DatasetSpec
from visualization.convert import read_motion

MAX_CONTROL_BYTES = 50_000_000
SUFFIXES = (".json", ".npy", ".bvh")


def canonical_joints(path: Path, spec: DatasetSpec) -> np.ndarray:
    """(T, J, 3) joints of a motion file in the generated motion's frame (see module docstring)."""
    motion = read_motion(path, spec)
    if motion.features is not None:
        return np.asarray(recover_from_ric(motion.features, spec.joints_num), dtype=np.float32)
    if motion.joints.shape[0] < 2:
        raise ValueError(f"--control {path}: a motion needs at least 2 frames")
    return np.asarray(extract_features_with_positions(motion.joints, spec)[1], dtype=np.float32)


def read_control(
    path: str | Path,
    spec: DatasetSpec,
    *,
    total_frames: int | None = None,
    joints: str = "",
    frames: str = "",
    at: str = "",
) -> ControlSpec:
    """One control file (see module docstring). ``total_frames``: the motion length when known (fractions in
    keyframes are of it; 196 frames otherwise). ``joints``/``frames``/``at``: the selection flags' text."""
    path = Path(path)
    where = f"--control {path}"
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{where}: unsupported extension {path.suffix or '(none)'!r}; use {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{where}: file not found")
    if path.stat().st_size > MAX_CONTROL_BYTES:
        raise ValueError(f"{where}: {path.stat().st_size} bytes is too large for a control file")
    length = total_frames or spec.max_motion_length
    if path.suffix.lower() == ".json":
        if joints or frames or at:
            raise ValueError(
                f"{where}: --control_joints/--control_frames/--control_at select from a motion file; "
                "a keyframe file names its joints and frames itself"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where}: not a JSON keyframe file ({exc})") from None
        return keyframes_from_json(data, spec, length, source=str(path))
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{where}: not a readable .npy array ({exc})") from None
        if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
            if frames or at:
                raise ValueError(
                    f"{where}: a targets file (with NaN) gives its frames itself; drop --control_frames/--control_at"
                )
            targets = targets_from_array(arr, spec, source=str(path)).targets.copy()
            if joints:
                keep = np.zeros(spec.joints_num, bool)
                keep[parse_joints(joints, spec)] = True
                targets[:, ~keep] = np.nan
            return ControlSpec(targets, str(path)).check(spec)
    motion = canonical_joints(path, spec)
    src = parse_frames(frames, motion.shape[0], spec.fps)
    dst = parse_frames(at, length, spec.fps, "--control_at") if at else None
    return targets_from_motion(motion, spec, parse_joints(joints or "pelvis", spec), src, dst, source=str(path))
