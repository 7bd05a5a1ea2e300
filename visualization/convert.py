"""Convert a motion between representations: ``python -m visualization.convert IN OUT [--dataset t2m|kit]``.

The input kind is read off the array shape: features ``(T, 263|251)`` or joint positions ``(T, 22|21, 3)``;
the dataset is inferred from it unless ``--dataset`` is given. The output format is chosen by OUT's extension:
``.npy`` writes the *other* kind (features -> joints via ``recover_from_ric``, joints -> features via the official
``process_file``), unless ``--to`` says which. ``--cleanup`` runs the physical clean-up (utils/cleanup.py) on the
joints first; the motion is then joints, and a ``.npy`` output defaults to joints.

Adding a format: put a reader in :data:`READERS` or a writer in :data:`WRITERS`, keyed by extension. A reader
turns a file into a :class:`Motion`; a writer writes a :class:`Motion` to the path it is given (a temporary
file with the final extension, renamed over OUT only on success). Use :func:`lazy` so heavy modules are imported
only when their format is used, e.g. ``WRITERS[".bvh"] = lazy("visualization.bvh", "write_bvh")``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.checkpoint import atomic_write
from utils.cleanup import cleanup_motion
from utils.cli import CliParser, run_cli
from utils.log import setup_logging
from utils.motion import check_bones, check_features, check_joints, extract_features, recover_from_ric
from utils.npy import check_output, load_npy
from utils.skeleton import DatasetSpec, get_dataset_spec

logger = logging.getLogger(__name__)

MAX_MOTION_ABS = 1e5  # feature values / joint coordinates; larger ones overflow the kinematics (float32)


@dataclass(frozen=True)
class Motion:
    """One clip in either representation (exactly one of ``features`` / ``joints`` is set)."""

    spec: DatasetSpec
    features: np.ndarray | None = None  # (T, D) float32
    joints: np.ndarray | None = None  # (T, J, 3) float32
    feet_thre: float | None = None  # foot-contact threshold for joints -> features (None: dataset default)

    @property
    def kind(self) -> str:
        return "features" if self.features is not None else "joints"

    def as_joints(self) -> np.ndarray:
        """(T, J, 3) positions; recovered from the rotation-invariant features if needed."""
        if self.joints is not None:
            return self.joints
        return np.asarray(recover_from_ric(self.features, self.spec.joints_num), dtype=np.float32)

    def as_features(self) -> np.ndarray:
        """(T', D) features; ``T' = T - 1`` when computed from joints (official process_file)."""
        if self.features is not None:
            return self.features
        return np.asarray(extract_features(self.joints, self.spec, self.feet_thre), dtype=np.float32)


Reader = Callable[[Path, DatasetSpec | None, argparse.Namespace], Motion]
Writer = Callable[[Motion, Path, argparse.Namespace], None]


def lazy(module: str, name: str) -> Callable:
    """A callable that imports ``module.name`` on first use (keeps optional dependencies out of start-up)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = f"{module}.{name}"
    return call


def motion_from_array(arr: np.ndarray, spec: DatasetSpec | None, source: str, feet_thre: float | None = None) -> Motion:
    """Classify an array as features (T, D) or joints (T, J, 3), validate it, and wrap it."""
    if arr.ndim == 2:
        spec = check_features(arr, spec, name=source)
        return Motion(spec, features=arr.astype(np.float32), feet_thre=feet_thre)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        spec = check_joints(arr, spec, name=source)
        check_bones(arr, spec, source)
        return Motion(spec, joints=arr.astype(np.float32), feet_thre=feet_thre)
    raise ValueError(f"{source}: expected features (T, 263|251) or joints (T, 22|21, 3), got shape {arr.shape}")


def read_npy(path: Path, spec: DatasetSpec | None, args: argparse.Namespace) -> Motion:
    arr = load_npy(path, "motion", ndim=(2, 3), max_abs=MAX_MOTION_ABS)
    return motion_from_array(arr, spec, str(path), getattr(args, "feet_thre", None))


def write_npy(motion: Motion, path: Path, args: argparse.Namespace) -> None:
    """Features -> joints or joints -> features (``--to`` overrides)."""
    other = "joints" if motion.kind == "features" or getattr(args, "cleanup", False) else "features"
    target = getattr(args, "to", None) or other
    arr = check_output(motion.as_joints() if target == "joints" else motion.as_features(), path, target)
    np.save(path, arr)
    logger.info("%s %s -> %s %s (%s)", motion.kind, motion.spec.name, target, arr.shape, path.suffix)


READERS: dict[str, Reader] = {".npy": read_npy, ".bvh": lazy("visualization.joints2bvh", "read_motion_bvh")}
WRITERS: dict[str, Writer] = {
    ".npy": write_npy,
    ".bvh": lazy("visualization.retarget", "write_motion_bvh"),
    ".fbx": lazy("visualization.retarget", "write_motion_via_blender"),
    ".glb": lazy("visualization.retarget", "write_motion_via_blender"),
    ".mp4": lazy("visualization.render", "write_motion_video"),
    ".gif": lazy("visualization.render", "write_motion_video"),
}


def _handler(table: dict, path: Path, role: str) -> Callable:
    ext = path.suffix.lower()
    if ext not in table:
        raise ValueError(f"{role} {path}: unsupported extension {ext or '(none)'!r}; supported: {sorted(table)}")
    return table[ext]


def read_motion(path: str | Path, spec: DatasetSpec | None = None) -> Motion:
    """Any supported motion file (features/joints ``.npy``, ``.bvh`` of this project's rig) as a :class:`Motion`."""
    path = Path(path)
    reader = _handler(READERS, path, "input")
    if not path.is_file():
        raise FileNotFoundError(f"input {path} not found")
    return reader(path, spec, argparse.Namespace())


def cleaned(motion: Motion) -> Motion:
    """The motion's joints after :func:`utils.cleanup.cleanup_motion` (needs at least 4 frames)."""
    joints = motion.as_joints()
    if joints.shape[0] < 4:
        raise ValueError(f"--cleanup needs a motion of at least 4 frames, got {joints.shape[0]}")
    return Motion(motion.spec, joints=cleanup_motion(joints, motion.spec), feet_thre=motion.feet_thre)


def convert(src: Path, dst: Path, args: argparse.Namespace) -> Motion:
    """Read ``src``, write ``dst`` atomically (a failed conversion leaves an existing ``dst`` untouched)."""
    spec = get_dataset_spec(args.dataset) if args.dataset else None
    reader = _handler(READERS, src, "input")
    writer = _handler(WRITERS, dst, "output")
    if not src.is_file():
        raise FileNotFoundError(f"input {src} not found")
    motion = reader(src, spec, args)
    if getattr(args, "cleanup", False):
        motion = cleaned(motion)
    with atomic_write(dst) as tmp:
        try:
            writer(motion, tmp, args)
        except ValueError as exc:  # name the files the user gave, not the temporary one
            raise ValueError(f"cannot write {dst} from {src}: {str(exc).replace(str(tmp), str(dst))}") from None
    return motion


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m visualization.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help=f"input file ({', '.join(sorted(READERS))})")
    parser.add_argument("output", type=Path, help=f"output file ({', '.join(sorted(WRITERS))})")
    parser.add_argument("--dataset", default=None, help="t2m (HumanML3D) or kit; default: inferred from the shape")
    parser.add_argument(
        "--to",
        choices=("joints", "features"),
        default=None,
        help=".npy output kind (default: the other kind than the input)",
    )
    parser.add_argument(
        "--feet_thre",
        type=float,
        default=None,
        help="foot-contact threshold for joints -> features (default: the dataset's, 0.002 / 0.05)",
    )
    parser.add_argument(
        "--offsets",
        choices=("motion", "template", "tpose"),
        default=None,
        help=".bvh skeleton: the motion's own bone lengths, the official template (t2m default) or a T-pose rest",
    )
    parser.add_argument(
        "--cleanup",
        action="store_true",
        help="physical clean-up of the joints first (less jitter and foot skating, feet locked)",
    )
    parser.add_argument("--foot_cleanup", dest="cleanup", action="store_true", help="older name of --cleanup")
    parser.add_argument("--target_rig", default=None, help=".bvh/.fbx/.glb: retarget onto this rig (a BVH file)")
    parser.add_argument("--mapping", default=None, help="with --target_rig: JSON {rig joint: source joint}")
    parser.add_argument("--title", default="", help=".mp4/.gif caption")
    parser.add_argument("--size", type=int, default=None, help=".mp4/.gif frame size in pixels (official: 1000)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging()
    convert(args.input.expanduser().resolve(), args.output.expanduser().resolve(), args)


if __name__ == "__main__":
    run_cli(main)
