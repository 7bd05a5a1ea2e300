"""Write generated motions in the official output layout (spec §7.4), every file atomically.

    <root>/joints/<k>/sample<k>_repeat<r>_len<L>.npy      joints (L, J, 3) float32, dataset joint order
    <root>/features/<k>/sample<k>_repeat<r>_len<L>.npy    de-normalised features (L, D) float32
    <root>/animations/<k>/sample<k>_repeat<r>_len<L>.bvh  (and .mp4 / .gif, .fbx / .glb through Blender)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from utils.skeleton import DatasetSpec
from visualization.joints2bvh import rig_for, save_bvh
from visualization.render import render_motion

if TYPE_CHECKING:
    from visualization.retarget import RetargetPlan

BLENDER_KINDS = ("fbx", "glb")


class GeneratedMotion(Protocol):
    caption: str
    features: np.ndarray
    joints: np.ndarray


def save_npy(path: Path, array: np.ndarray) -> Path:
    """``np.save`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(array, dtype=np.float32))
    os.replace(tmp, path)
    return path


class MotionWriter:
    """Writes each motion's requested outputs (``npy``, ``bvh``, ``mp4``, ``gif``, ``fbx``, ``glb``) under ``root``.

    ``rig``: retarget the BVH (and the FBX/GLB made from it) onto that rig instead of the project's skeleton."""

    def __init__(self, root: str | Path, spec: DatasetSpec, kinds: Sequence[str], *, bvh_offsets: str = "template",
                 foot_cleanup: bool = False, rig: RetargetPlan | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.spec = spec
        self.kinds = list(kinds)
        # A dataset without a BVH template skeleton (KIT) exports with the motion's own bone lengths.
        has_template = rig_for(spec).template_offsets is not None
        self.bvh_offsets = "motion" if bvh_offsets == "template" and not has_template else bvh_offsets
        self.foot_cleanup = foot_cleanup
        self.rig = rig

    def write(self, motion: GeneratedMotion, sample: int, repeat: int) -> list[Path]:
        """All outputs of one motion; returns the paths written."""
        stem = f"sample{sample}_repeat{repeat}_len{motion.joints.shape[0]}"
        anim = self.root / "animations" / str(sample)
        written = []
        if "npy" in self.kinds:
            written.append(save_npy(self.root / "joints" / str(sample) / f"{stem}.npy", motion.joints))
            written.append(save_npy(self.root / "features" / str(sample) / f"{stem}.npy", motion.features))
        blender = [anim / f"{stem}.{kind}" for kind in BLENDER_KINDS if kind in self.kinds]
        if "bvh" in self.kinds or blender:
            bvh = anim / f"{stem}.bvh"
            if self.rig is not None:
                from visualization.retarget import save_retargeted_bvh
                save_retargeted_bvh(motion.joints, bvh, self.rig)
            else:
                contacts = (motion.features[:, self.spec.feature_slices["foot_contact"]] > 0.5 if self.foot_cleanup
                            else None)
                save_bvh(motion.joints, bvh, self.spec, offsets=self.bvh_offsets, foot_cleanup=self.foot_cleanup,
                         contacts=contacts)
            if blender:
                from visualization.blender_check import export_with_blender
                written += export_with_blender(bvh, blender)
            if "bvh" in self.kinds:
                written.append(bvh)
            else:
                bvh.unlink()
        for kind in ("mp4", "gif"):
            if kind in self.kinds:
                written.append(render_motion(motion.joints, anim / f"{stem}.{kind}", self.spec, title=motion.caption))
        return written
