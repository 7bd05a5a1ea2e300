"""Write generated motions in the official output layout (docs/export.md#output-layout), every file atomically.

<root>/joints/<k>/sample<k>_repeat<r>_len<L>.npy      joints (L, J, 3) float32, dataset joint order
<root>/features/<k>/sample<k>_repeat<r>_len<L>.npy    de-normalised features (L, D) float32
<root>/animations/<k>/sample<k>_repeat<r>_len<L>.bvh  (and .mp4 / .gif, .fbx / .glb through Blender)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from utils.checkpoint import atomic_write
from utils.cleanup import cleaned_features, cleanup_at_origin
from utils.npy import check_output
from utils.physical import to_metres
from utils.skeleton import DatasetSpec
from visualization.blender_check import export_with_blender
from visualization.bvh import BvhMotion, write_bvh
from visualization.joints2bvh import bvh_to_joints, joints_to_bvh, rig_for
from visualization.render import render_motion
from visualization.retarget import RetargetPlan, retarget

logger = logging.getLogger(__name__)

BLENDER_KINDS = ("fbx", "glb")
FK_NOTE_M = 0.01  # --bvh_offsets motion: say how far FK of the BVH is from the joints beyond this


class GeneratedMotion(Protocol):
    caption: str
    features: np.ndarray
    joints: np.ndarray


def save_npy(path: Path, array: np.ndarray) -> Path:
    """``np.save`` through a temporary file and a rename; NaN/inf are refused before anything is written."""
    array = check_output(np.asarray(array, dtype=np.float32), path)
    with atomic_write(path) as tmp:
        np.save(tmp, array)
    return path


class MotionWriter:
    """Writes each motion's requested outputs (``npy``, ``bvh``, ``mp4``, ``gif``, ``fbx``, ``glb``) under ``root``.

    ``cleanup``: joints (npy, BVH, video) go through :func:`utils.cleanup.cleanup_at_origin` first and the
    features file holds the cleaned joints' features (:func:`utils.cleanup.cleaned_features`), so both agree.
    ``rig``: retarget the BVH (and the FBX/GLB made from it) onto that rig instead of the project's skeleton."""

    def __init__(
        self,
        root: str | Path,
        spec: DatasetSpec,
        kinds: Sequence[str],
        *,
        bvh_offsets: str = "template",
        cleanup: bool = False,
        rig: RetargetPlan | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.spec = spec
        self.kinds = list(kinds)
        # A dataset without a BVH template skeleton (KIT) exports with the motion's own bone lengths.
        has_template = rig_for(spec).template_offsets is not None
        self.bvh_offsets = "motion" if bvh_offsets == "template" and not has_template else bvh_offsets
        self.cleanup = cleanup
        self.rig = rig

    @classmethod
    def from_options(cls, opt: object, spec: DatasetSpec, rig: RetargetPlan | None = None) -> MotionWriter:
        """gen_t2m.py / edit_t2m.py: ``<out_dir>/<ext>`` with their ``--outputs``, ``--bvh_offsets`` and
        ``--cleanup`` options (``rig``: what :func:`visualization.retarget.prepare_rig` gave for ``--target_rig``)."""
        root = Path(opt.out_dir) / opt.ext
        return cls(root, spec, opt.output_kinds, bvh_offsets=opt.bvh_offsets, cleanup=opt.cleanup, rig=rig)

    def joints(self, motion: GeneratedMotion, targets: np.ndarray | None = None) -> np.ndarray:
        """The joints this writer exports for ``motion`` (cleaned when ``cleanup``, pinned back to a control's
        ``targets`` (T', J, 3), NaN = free, when given: :func:`utils.cleanup.cleanup_at_origin`)."""
        return cleanup_at_origin(motion.joints, self.spec, targets=targets) if self.cleanup else motion.joints

    def write(self, motion: GeneratedMotion, sample: int, repeat: int, joints: np.ndarray | None = None) -> list[Path]:
        """All outputs of one motion (``joints``: what :meth:`joints` gives, when already computed); returns the
        paths written.

        Everything is computed and checked (finite values) before the first file is written, so a degenerate
        motion leaves every existing output as it was."""
        joints = self.joints(motion) if joints is None else joints
        features = cleaned_features(motion.features, joints, self.spec) if self.cleanup else motion.features
        stem = f"sample{sample}_repeat{repeat}_len{joints.shape[0]}"
        anim = self.root / "animations" / str(sample)
        check_output(joints, anim / stem, "joints")
        check_output(features, anim / stem, "features")
        bvh = None
        blender = [anim / f"{stem}.{kind}" for kind in BLENDER_KINDS if kind in self.kinds]
        if "bvh" in self.kinds or blender:
            bvh = (
                retarget(joints, self.rig)[0]
                if self.rig is not None
                else joints_to_bvh(joints, self.spec, offsets=self.bvh_offsets)
            )
            for values in (bvh.rotations, bvh.positions, bvh.offsets):
                check_output(values, anim / f"{stem}.bvh", "BVH")
            if self.rig is None and self.bvh_offsets == "motion":
                self._note_fk_error(joints, bvh, stem)
        written = []
        if "npy" in self.kinds:
            written.append(save_npy(self.root / "joints" / str(sample) / f"{stem}.npy", joints))
            written.append(save_npy(self.root / "features" / str(sample) / f"{stem}.npy", features))
        if bvh is not None:
            path = write_bvh(anim / f"{stem}.bvh", bvh)
            if blender:
                written += export_with_blender(path, blender)
            if "bvh" in self.kinds:
                written.append(path)
            else:
                path.unlink()
        for kind in ("mp4", "gif"):
            if kind in self.kinds:
                written.append(render_motion(joints, anim / f"{stem}.{kind}", self.spec, title=motion.caption))
        return written

    def _note_fk_error(self, joints: np.ndarray, bvh: BvhMotion, stem: str) -> None:
        """Log how far FK of a one-skeleton BVH lands from ``joints`` (T, J, 3) when the motion's bone lengths
        change over time (generated motions' do; mocap's do not): one BVH skeleton cannot follow them."""
        metres = to_metres(joints, self.spec)  # KIT-ML joints are millimetres
        err = float(np.linalg.norm(to_metres(bvh_to_joints(bvh, self.spec), self.spec) - metres, axis=-1).max())
        if err > FK_NOTE_M:
            parents = np.asarray(self.spec.parents[1:])
            lengths = np.linalg.norm(metres[:, 1:] - metres[:, parents], axis=-1)  # (T, J-1)
            logger.info(
                "%s.bvh (--bvh_offsets motion): FK is up to %.1f cm from the joints, whose bone lengths vary by "
                "up to %.1f cm within the motion (one BVH skeleton has one length per bone)",
                stem,
                100 * err,
                100 * float((lengths.max(0) - lengths.min(0)).max()),
            )
