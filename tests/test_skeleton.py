"""The dataset table (docs/data.md#feature-vector, docs/data.md#dataset-constants)."""

from __future__ import annotations

import numpy as np
import pytest

from utils.skeleton import get_dataset_spec, spec_from_feature_dim, spec_from_joint_count


def test_parents_match_spec() -> None:
    assert get_dataset_spec("t2m").parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
    assert get_dataset_spec("kit").parents == (-1, 0, 1, 2, 3, 3, 5, 6, 3, 8, 9, 0, 11, 12, 13, 14, 0, 16, 17, 18, 19)


@pytest.mark.parametrize("name,dim,joints", [("t2m", 263, 22), ("kit", 251, 21)])
def test_feature_layout_covers_every_dim(name: str, dim: int, joints: int) -> None:
    spec = get_dataset_spec(name)
    sl = spec.feature_slices
    covered = np.concatenate([np.arange(dim)[s] for s in sl.values()])
    assert np.array_equal(covered, np.arange(dim))
    assert spec_from_feature_dim(dim) is spec and spec_from_joint_count(joints) is spec


def test_t2m_target_skeleton_matches_reference_joints(reference_dir) -> None:
    """Bone lengths of the shipped new_joints equal the built-in target skeleton (docs/data.md#dataset-constants)."""
    spec = get_dataset_spec("t2m")
    joints = np.load(reference_dir / "humanml3d/new_joints/012314.npy")
    parents = np.array(spec.parents[1:])
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)
    np.testing.assert_allclose(lengths.mean(0), spec.target_bone_lengths, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(spec.target_offsets, axis=-1)[1:], spec.target_bone_lengths, atol=1e-7)


def test_unknown_names_are_rejected() -> None:
    assert get_dataset_spec("HumanML3D").name == "t2m"
    with pytest.raises(ValueError, match="unknown dataset_name"):
        get_dataset_spec("amass")
    with pytest.raises(ValueError, match="feature dimension 100"):
        spec_from_feature_dim(100)
