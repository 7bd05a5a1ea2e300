"""Blender 3.4 import of retargeted BVH files, and FBX / GLB written through Blender re-imported in Blender
(``pytest -m blender tests/test_retarget_blender.py -s`` prints the figures). Rigs: tests/rigs.py; motion: the real
HumanML3D clip 012314 (../shared/reference)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_retarget import RIGS, T2M, rig_files, skate_ratio
from utils.quaternion import qrot, yaw_quat
from visualization.blender_check import blender_joint_positions, export_with_blender
from visualization.bvh import write_bvh
from visualization.retarget import bone_direction_errors, load_plan, retarget

pytestmark = [pytest.mark.blender, pytest.mark.skipif(shutil.which("blender") is None, reason="blender not on PATH")]


def _dirs(pos: np.ndarray, plan) -> np.ndarray:
    d = pos[:, list(plan.driven)]
    v = d[:, 1:] - d[:, list(plan.sub.parents[1:])]
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("name", list(RIGS))
def test_retargeted_rig_in_blender_and_fbx_glb_round_trip(name: str, reference_dir: Path, tmp_path: Path) -> None:
    joints = np.load(reference_dir / "humanml3d" / "new_joints" / "012314.npy").astype(np.float64)
    rig_path, map_path = rig_files(name, tmp_path)
    plan = load_plan(rig_path, T2M, map_path)
    motion, scale = retarget(joints, plan)
    ratio = scale[0]
    bvh = write_bvh(tmp_path / f"{name}.bvh", motion)
    names, pos = blender_joint_positions(bvh)
    pos = pos[:, [names.index(n) for n in plan.rig.names]]
    err = bone_direction_errors(pos, joints, plan)
    axes = RIGS[name][2]
    skate = skate_ratio(pos, joints, plan, axes, ratio)
    print(
        f"{name} in Blender: bone error mean {err.mean():.2f} p99 {np.percentile(err, 99):.2f} deg, "
        f"foot skate x{skate:.4f} of the source's"
    )
    assert err.mean() < 2.0 and np.percentile(err, 99) < 8.0 and skate <= 1.0
    np.testing.assert_allclose(pos[:, plan.hips], (scale * joints[:, 0]) @ axes.T, atol=1e-3 * ratio)
    outputs = export_with_blender(bvh, [tmp_path / f"{name}.fbx", tmp_path / f"{name}.glb"])
    for path in outputs:
        names2, pos2 = blender_joint_positions(path, fps=T2M.fps)
        pos2 = pos2[:, [names2.index(n) for n in plan.rig.names]]
        assert pos2.shape == pos.shape
        root = np.abs(pos2[:, plan.hips] - pos[:, plan.hips]).max() / ratio  # source units (m)
        cos = np.clip((_dirs(pos2, plan) * _dirs(pos, plan)).sum(-1), -1, 1)
        worst = np.rad2deg(np.arccos(cos)).max()
        print(
            f"{name} {path.suffix}: {len(pos2)} frames, root path within {1000 * root:.3f} mm (source scale), "
            f"max bone direction change {worst:.3f} deg"
        )
        assert root < 1e-3
        assert worst < 1.0


def test_same_error_at_every_facing_in_blender(reference_dir: Path, tmp_path: Path) -> None:
    """The clip turned by 0/90/180/270 degrees about the vertical, retargeted onto the Mixamo rig, imported in
    Blender: the same bone-direction errors at every facing (no flips)."""
    joints = np.load(reference_dir / "humanml3d" / "new_joints" / "012314.npy").astype(np.float64)
    plan = load_plan(rig_files("mixamo", tmp_path)[0], T2M)
    errors = []
    for degrees in (0, 90, 180, 270):
        turned = qrot(yaw_quat(np.full(joints.shape[:2], np.deg2rad(degrees))), joints)
        names, pos = blender_joint_positions(write_bvh(tmp_path / f"turn{degrees}.bvh", retarget(turned, plan)[0]))
        errors.append(bone_direction_errors(pos[:, [names.index(n) for n in plan.rig.names]], turned, plan))
        err = errors[-1]
        print(f"facing {degrees:3d} deg in Blender: bone error mean {err.mean():.3f} p99 {np.percentile(err, 99):.3f}")
    for err in errors[1:]:
        np.testing.assert_allclose(err, errors[0], atol=0.05)  # degrees
