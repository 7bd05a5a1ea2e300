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
* ``hovering``: share of frames on which the body is off the floor without falling (:func:`hover_frames`):
  for at least :data:`MIN_FLIGHT` (0.25 s) every joint is more than :data:`AIRBORNE_HEIGHT` (10 cm) up, the
  lowest reaching 15 cm, the mean joint height falls slower than g/2 (a jump's flight falls at g), and it is not
  standing on something (a foot joint at rest, still and not drifting up or down, on most of those frames for
  :data:`MIN_STAND`, 1 s, or more: a box, stairs). ``floating``, which only looks at frames with a still foot,
  misses a body that hovers while it moves. On the 68 demo clips and the reference clip it is 0.
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
GRAVITY = 9.81  # m/s²
AIRBORNE_HEIGHT = 0.10  # m: a body whose every joint is higher than this is off the floor
MIN_FLIGHT = 0.25  # s: the shortest time off the floor whose fall is measured (shorter: a hop, noise)
HOVER_CLEARANCE = 0.05  # m: a hover rises this much above AIRBORNE_HEIGHT (lower: tiptoes, a shuffle, noise)
MIN_STAND = 1.0  # s: the shortest time off the floor a still foot is taken to stand on something (a box, stairs)
SUPPORT_SPEED = 0.2  # m/s: a foot on something moves up or down slower than this (1 cm per frame at 20 fps)

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


def _foot_steps(joints: np.ndarray, feet: tuple[int, ...]) -> np.ndarray:
    """(T, F, 3) metres each foot joint moves to the next frame (the last frame repeats the step before it)."""
    step = np.diff(joints[:, list(feet)], axis=0)
    return np.concatenate([step, step[-1:]], axis=0)


def contact_frames(joints: np.ndarray, feet: tuple[int, ...], fps: float) -> np.ndarray:
    """(T,) bool: frames where some foot joint is slower than :data:`CONTACT_SPEED` (should touch the floor)."""
    joints = _check(joints, fps, 2)
    speed = np.linalg.norm(_foot_steps(joints, feet), axis=-1) * fps  # (T, F) m/s
    return (speed < CONTACT_SPEED).any(axis=1)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a (T,) bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def vertical_acceleration(joints: np.ndarray, fps: float) -> float:
    """Vertical acceleration (m/s²) of the mean joint height, a centre-of-mass proxy, over frames (T >= 3, J, 3):
    twice the quadratic coefficient of its least-squares parabola in time. About -g in free flight (the demo
    clips' jumps, flips and spins fit -5.1 .. -9.8: the limbs move about the body's centre)."""
    joints = _check(joints, fps, 3)
    return float(2 * np.polyfit(np.arange(len(joints)) / fps, joints[..., 1].mean(axis=1), 2)[0])


def min_flight_frames(fps: float) -> int:
    """Frames in :data:`MIN_FLIGHT` at ``fps``, at least 3 (a parabola needs them): 5 at 20 fps, 4 at 12.5."""
    return max(3, int(np.ceil(MIN_FLIGHT * fps)))


def off_floor_spans(joints: np.ndarray, fps: float) -> list[tuple[int, int]]:
    """[start, end) of the stretches of at least :func:`min_flight_frames` in which every joint is more than
    :data:`AIRBORNE_HEIGHT` above the floor. joints: (T, J, 3) metres."""
    joints = _check(joints, fps, 1)
    shortest = min_flight_frames(fps)
    return [(s, e) for s, e in true_runs(joints[..., 1].min(axis=1) > AIRBORNE_HEIGHT) if e - s >= shortest]


def supported_frames(joints: np.ndarray, feet: tuple[int, ...], fps: float) -> np.ndarray:
    """(T,) bool: frames where some foot joint could rest on something: slower than :data:`CONTACT_SPEED` (as in
    :func:`contact_frames`) and moving up or down slower than :data:`SUPPORT_SPEED`."""
    joints = _check(joints, fps, 2)
    step = _foot_steps(joints, feet)  # (T, F, 3) m
    still = np.linalg.norm(step, axis=-1) * fps < CONTACT_SPEED
    return (still & (np.abs(step[..., 1]) * fps < SUPPORT_SPEED)).any(axis=1)


def hover_frames(joints: np.ndarray, feet: tuple[int, ...], fps: float) -> np.ndarray:
    """(T,) bool: frames of a body that is off the floor and does not fall. A stretch of :func:`off_floor_spans`
    whose lowest joint rises :data:`HOVER_CLEARANCE` above :data:`AIRBORNE_HEIGHT` hovers when its
    :func:`vertical_acceleration` is above -g/2 (a flight falls at g), unless it lasts at least
    :data:`MIN_STAND` with a foot joint at rest (:func:`supported_frames`) on most of its frames: then the body
    stands on something, a box or stairs. A foot held still in the air for less than that, or drifting up or
    down, does not hold it up."""
    joints = _check(joints, fps, 2)
    supported = supported_frames(joints, feet, fps)
    lowest = joints[..., 1].min(axis=1)
    hover = np.zeros(len(joints), dtype=bool)
    for s, e in off_floor_spans(joints, fps):
        if lowest[s:e].max() <= AIRBORNE_HEIGHT + HOVER_CLEARANCE:
            continue
        standing = e - s >= MIN_STAND * fps and supported[s:e].mean() > 0.5
        if vertical_acceleration(joints[s:e], fps) > -GRAVITY / 2 and not standing:
            hover[s:e] = True
    return hover


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
    hovering: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"penetration {100 * self.penetration_mean:.2f} cm (max {100 * self.penetration_max:.2f}), "
            f"floating {100 * self.floating:.2f} cm, skate {100 * self.skate_ratio:.1f} % "
            f"({100 * self.skate_distance:.2f} cm/s), jerk {self.jerk:.1f} m/s³, "
            f"acceleration {self.acceleration:.2f} m/s², hovering {100 * self.hovering:.1f} %"
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
    hover = float(hover_frames(joints, feet, fps).mean())
    return PhysicalMetrics(pen_mean, pen_max, flo, ratio, distance, jerk, acc, phys, hover)


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
