"""The cleaned BVH in Blender 3.4 (``pytest -m blender tests/test_cleanup_blender.py -s`` prints the figures).

Demo-model generations, raw and with ``cleanup=True``, are written as BVH (the default template skeleton, and the
motion's own bone lengths), imported with Blender's own importer, and their bone directions compared with the
joints they were made from. A BVH has one rotation per joint, so the bones leaving a joint with several children
(pelvis -> hips/spine, chest -> neck/collars) follow the joints only as far as those keep their angles to each
other; every other bone is matched exactly. So: chain bones within 0.1° (p99), and the branch bones of the
cleaned BVH no further from the cleaned joints than the raw BVH's from the raw joints."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.pipeline import MoMaskPipeline
from tests.test_blender import _in_smpl_order
from utils.cleanup import cleanup_motion
from utils.skeleton import get_dataset_spec
from visualization.blender_check import blender_joint_positions
from visualization.joints2bvh import save_bvh

pytestmark = [pytest.mark.blender, pytest.mark.skipif(shutil.which("blender") is None, reason="blender not on PATH")]

T2M = get_dataset_spec("t2m")
PARENTS = list(T2M.parents)
CAPTIONS = ["a person walks forward", "a person jumps up and lands"]
# Bones (child joints 1..J-1) whose parent joint has more than one child.
BRANCH = np.array([Counter(PARENTS[1:])[p] > 1 for p in PARENTS[1:]])


def _directions(x: np.ndarray) -> np.ndarray:
    v = x[:, 1:] - x[:, PARENTS[1:]]
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _blender_error(joints: np.ndarray, path: Path, offsets: str) -> np.ndarray:
    """(T, J-1) degrees between the bones Blender imports from ``joints``' BVH and ``joints``' own bones."""
    names, pos = blender_joint_positions(save_bvh(joints, path, T2M, offsets=offsets))
    imported = _in_smpl_order(names, pos)
    assert imported.shape == joints.shape
    assert np.abs(imported[:, 0] - joints[:, 0]).max() < 1e-3  # the root follows the motion's path
    return np.rad2deg(np.arccos(np.clip((_directions(imported) * _directions(joints)).sum(-1), -1, 1)))


@pytest.fixture(scope="module")
def raw() -> list[np.ndarray]:
    return [m.joints.astype(np.float64) for m in MoMaskPipeline.demo().generate(CAPTIONS, seed=3)]


@pytest.mark.parametrize("offsets", ["template", "motion"])
@pytest.mark.parametrize("index", [0, 1])
def test_cleaned_bvh_keeps_its_bone_directions_in_blender(
    raw: list[np.ndarray], tmp_path: Path, offsets: str, index: int
) -> None:
    cleaned = cleanup_motion(raw[index], T2M)
    err_raw = _blender_error(raw[index], tmp_path / "raw.bvh", offsets)
    err = _blender_error(cleaned, tmp_path / "clean.bvh", offsets)
    print(
        f"{CAPTIONS[index]!r}, {offsets} offsets, cleaned: chain bones p99 {np.percentile(err[:, ~BRANCH], 99):.3f} "
        f"deg; branch bones mean {err[:, BRANCH].mean():.2f} deg, p99 {np.percentile(err[:, BRANCH], 99):.2f} "
        f"(raw BVH: {err_raw[:, BRANCH].mean():.2f}, {np.percentile(err_raw[:, BRANCH], 99):.2f})"
    )
    assert np.percentile(err[:, ~BRANCH], 99) < 0.1
    assert err[:, BRANCH].mean() <= err_raw[:, BRANCH].mean() + 0.1
    assert np.percentile(err[:, BRANCH], 99) <= np.percentile(err_raw[:, BRANCH], 99) + 1.0
