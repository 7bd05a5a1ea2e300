"""Physical plausibility of a motion: ground penetration, floating, foot skating, jitter. Pure NumPy, no state.

Input: joint positions ``(T, J, 3)`` in **metres**, Y up, floor at ``y = 0`` (the HumanML3D convention: the
dataset puts the lowest foot joint of each clip on the floor; generated motions inherit it through the absolute
root height feature), frame rate ``fps``. :func:`to_metres` converts KIT-ML millimetres. The foot joints are
the dataset's ``fid_l + fid_r`` (ankle, toe of each side) from :class:`utils.skeleton.DatasetSpec`.

Definitions (the exact ones the tests check; thresholds are speeds, so the metrics do not depend on fps for a
smoothly sampled motion):

* ``penetration_mean`` / ``penetration_max`` (m): depth of the lowest joint below the floor,
  ``d_t = max(0, -min_j y_tj)``, averaged / maximised over frames.
* ``floating`` (m): mean over the frames that should be in contact of the lowest joint's height above the floor,
  ``max(0, min_j y_tj)``. A frame should be in contact when some foot joint is (nearly) still: its speed
  ``|x_{t+1} - x_t| * fps`` is below :data:`CONTACT_SPEED` (0.5 m/s; the last frame uses the step before).
  Flight phases (every foot joint moving) are excluded; 0 when no frame qualifies.
* ``skate_ratio``: share of the ``T - 1`` frame steps in which some foot joint slides: it is within
  :data:`SKATE_HEIGHT` (5 cm) of the floor at both frames of the step and moves more than
  ``SKATE_SPEED / fps`` horizontally (xz) — 0.5 m/s, i.e. the usual 2.5 cm between frames at 20 fps
  (4 cm at KIT's 12.5 fps).
* ``skate_distance`` (m per foot per second of motion): per step and foot, the largest horizontal slide of its
  grounded joints (ankle, toe within 5 cm of the floor at both frames of the step, any speed); summed over the
  steps, averaged over the two feet, divided by the duration ``(T - 1) / fps``. Both feet on the floor sliding
  at ``v`` m/s all along give ``v``.
* ``jerk`` (m/s³) / ``acceleration`` (m/s²): mean over joints and frames of the norm of the third / second
  forward finite difference times ``fps³`` / ``fps²``.
* ``phys_err`` (m): the mean of ``penetration_mean``, ``floating`` and the skate slide per 1/20 s
  (``skate_distance / 20``), one number in the spirit of PhysDiff's Phys-Err.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from utils.skeleton import DatasetSpec

CONTACT_SPEED = 0.5  # m/s: a foot joint slower than this could be carrying weight
SKATE_HEIGHT = 0.05  # m: a foot joint this close to the floor is on it
SKATE_SPEED = 0.5  # m/s: 2.5 cm per frame at 20 fps
REFERENCE_FPS = 20.0  # phys_err expresses the skate slide per frame at this rate

# Dataset length unit in metres (KIT-ML positions are millimetres).
METRES_PER_UNIT = {"t2m": 1.0, "kit": 0.001}


def to_metres(joints: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Dataset-unit joints (..., J, 3) -> metres (float64)."""
    return np.asarray(joints, dtype=np.float64) * METRES_PER_UNIT.get(spec.name, 1.0)


def foot_joints(spec: DatasetSpec) -> tuple[int, int, int, int]:
    """(left ankle, left toe, right ankle, right toe) indices."""
    return (*spec.fid_l, *spec.fid_r)  # type: ignore[return-value]


def _check(joints: np.ndarray, fps: float, min_frames: int) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must have shape (T, J, 3), got {joints.shape}")
    if joints.shape[0] < min_frames:
        raise ValueError(f"need at least {min_frames} frames, got {joints.shape[0]}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return joints


def penetration(joints: np.ndarray) -> tuple[float, float]:
    """(mean, max) depth in metres of the lowest joint below the floor y = 0. joints: (T, J, 3)."""
    depth = np.maximum(0.0, -_check(joints, 1.0, 1)[..., 1].min(axis=1))
    return float(depth.mean()), float(depth.max())


def contact_frames(joints: np.ndarray, feet: tuple[int, ...], fps: float) -> np.ndarray:
    """(T,) bool: frames where some foot joint is slower than :data:`CONTACT_SPEED` (should touch the floor)."""
    joints = _check(joints, fps, 2)
    step = np.linalg.norm(np.diff(joints[:, list(feet)], axis=0), axis=-1) * fps  # (T-1, F) m/s
    step = np.concatenate([step, step[-1:]], axis=0)
    return (step < CONTACT_SPEED).any(axis=1)


def floating(joints: np.ndarray, feet: tuple[int, ...], fps: float) -> float:
    """Mean height (m) of the lowest joint above the floor over :func:`contact_frames` (0 if there are none)."""
    joints = _check(joints, fps, 2)
    contact = contact_frames(joints, feet, fps)
    if not contact.any():
        return 0.0
    return float(np.maximum(0.0, joints[contact, :, 1].min(axis=1)).mean())


def _grounded_steps(joints: np.ndarray, feet: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """-> horizontal step length (T-1, F) of each foot joint, and whether it is grounded at both frames."""
    f = joints[:, list(feet)]
    slide = np.linalg.norm(np.diff(f[..., [0, 2]], axis=0), axis=-1)
    low = f[..., 1] < SKATE_HEIGHT
    return slide, low[1:] & low[:-1]


def skating(joints: np.ndarray, feet: tuple[int, ...], fps: float) -> tuple[float, float]:
    """(skate_ratio, skate_distance in m per second of motion); see the module docstring."""
    joints = _check(joints, fps, 2)
    slide, grounded = _grounded_steps(joints, feet)
    skates = (grounded & (slide > SKATE_SPEED / fps)).any(axis=1)
    duration = (joints.shape[0] - 1) / fps
    per_foot = (slide * grounded).reshape(len(slide), -1, 2).max(axis=2)  # (T-1, 2): (ankle, toe) per side
    distance = float(per_foot.sum(axis=0).mean() / duration)
    return float(skates.mean()), distance


def jitter(joints: np.ndarray, fps: float) -> tuple[float, float]:
    """(mean jerk m/s³, mean acceleration m/s²) of all joints; needs at least 4 frames."""
    joints = _check(joints, fps, 4)
    acc = np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1) * fps**2
    jerk = np.linalg.norm(np.diff(joints, n=3, axis=0), axis=-1) * fps**3
    return float(jerk.mean()), float(acc.mean())


@dataclass(frozen=True)
class PhysicalMetrics:
    """All metrics of one motion (units in the module docstring)."""

    penetration_mean: float
    penetration_max: float
    floating: float
    skate_ratio: float
    skate_distance: float
    jerk: float
    acceleration: float
    phys_err: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"penetration {100 * self.penetration_mean:.2f} cm (max {100 * self.penetration_max:.2f}), "
            f"floating {100 * self.floating:.2f} cm, skate {100 * self.skate_ratio:.1f} % "
            f"({100 * self.skate_distance:.2f} cm/s), jerk {self.jerk:.1f} m/s³, "
            f"acceleration {self.acceleration:.2f} m/s²"
        )


def physical_metrics(joints: np.ndarray, spec: DatasetSpec, fps: float | None = None) -> PhysicalMetrics:
    """Every metric of one motion. joints: (T, J, 3) in **metres** (T >= 4); fps defaults to the dataset's."""
    fps = spec.fps if fps is None else fps
    joints = _check(joints, fps, 4)
    if joints.shape[1] != spec.joints_num:
        raise ValueError(f"{spec.name} joints must have shape (T, {spec.joints_num}, 3), got {joints.shape}")
    feet = foot_joints(spec)
    pen_mean, pen_max = penetration(joints)
    flo = floating(joints, feet, fps)
    ratio, distance = skating(joints, feet, fps)
    jerk, acc = jitter(joints, fps)
    phys = (pen_mean + flo + distance / REFERENCE_FPS) / 3.0
    return PhysicalMetrics(pen_mean, pen_max, flo, ratio, distance, jerk, acc, phys)


METRIC_NAMES = tuple(PhysicalMetrics.__dataclass_fields__)


def mean_metrics(metrics: list[PhysicalMetrics]) -> dict[str, float]:
    """Per-name mean over motions (``penetration_max`` is averaged too: the mean per-motion maximum)."""
    if not metrics:
        raise ValueError("mean_metrics needs at least one motion")
    return {name: float(np.mean([getattr(m, name) for m in metrics])) for name in METRIC_NAMES}


def motion_report(
    joints: np.ndarray, spec: DatasetSpec, raw_joints: np.ndarray | None = None, **info: object
) -> dict[str, object]:
    """JSON-ready record of one motion: ``info`` (caption, file, ...), ``frames`` and its metrics; with
    ``raw_joints`` (the motion before a clean-up) also the raw metrics. Dataset-unit joints (T, J, 3)."""
    record: dict[str, object] = {**info, "frames": int(np.shape(joints)[0])}
    record["metrics"] = physical_metrics(to_metres(joints, spec), spec).as_dict()
    if raw_joints is not None:
        record["raw_metrics"] = physical_metrics(to_metres(raw_joints, spec), spec).as_dict()
    return record


def write_report(path: str | os.PathLike[str], records: list[dict[str, object]], spec: DatasetSpec) -> Path:
    """Write the records as ``{"dataset", "fps", "units", "definitions", "motions": [...]}`` JSON, atomically."""
    path = Path(path)
    doc = {
        "dataset": spec.name,
        "fps": spec.fps,
        "units": "metres, seconds",
        "definitions": "utils/physical.py (module docstring)",
        "motions": records,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path
