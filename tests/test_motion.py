"""Joints <-> features (utils.motion, utils.kinematics) against the official outputs and by round trips.

Golden data (skipped when ../shared is absent):
* ``reference/humanml3d/new_joint_vecs|new_joints/012314.npy``: the shipped HumanML3D clip; the official
  ``recover_from_ric`` maps the first onto the second.
* ``reference/official_fixture/process_file_012314.npz``: official ``process_file(new_joints/012314, 0.002)``
  (features, global_positions, recovered_joints, and the target offsets it used, measured on that clip).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from utils.kinematics import (
    bone_offsets,
    forward_kinematics,
    forward_kinematics_cont6d,
    gaussian_smooth,
    inverse_kinematics,
)
from utils.motion import (
    check_features,
    check_joints,
    extract_features,
    extract_features_with_positions,
    mirror_joints,
    recover_from_ric,
    recover_from_rot,
    recover_root_rot_pos,
)
from utils.quaternion import qmul, qrot, quat_from_axis_angle, quat_to_cont6d, yaw_quat
from utils.skeleton import get_dataset_spec

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"
T2M = get_dataset_spec("t2m")
KIT = get_dataset_spec("kit")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not available: {path}")
    return path


@pytest.fixture(scope="module")
def shipped() -> tuple[np.ndarray, np.ndarray]:
    feats = np.load(_need(REFERENCE / "humanml3d/new_joint_vecs/012314.npy"))
    joints = np.load(_need(REFERENCE / "humanml3d/new_joints/012314.npy"))
    return feats, joints


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    with np.load(_need(REFERENCE / "official_fixture/process_file_012314.npz")) as z:
        return {k: z[k] for k in z.files}


def _bone_lengths(joints: torch.Tensor, spec) -> torch.Tensor:
    parents = list(spec.parents)
    return (joints[..., 1:, :] - joints[..., parents[1:], :]).norm(dim=-1)


# ---------------------------------------------------------------------------------------------- golden values


def test_recover_from_ric_matches_shipped_joints(shipped) -> None:
    feats, joints = shipped
    out = recover_from_ric(feats, 22)
    assert isinstance(out, np.ndarray) and out.shape == (170, 22, 3)
    np.testing.assert_allclose(out, joints, atol=1e-5, rtol=0)
    # Torch in, torch out, batched over a leading dim, inferred joint count.
    batched = recover_from_ric(torch.from_numpy(np.stack([feats, feats])))
    torch.testing.assert_close(batched[1], torch.from_numpy(joints), atol=1e-5, rtol=0)


@pytest.mark.parametrize("explicit_offsets", [False, True])
def test_extract_features_matches_official_process_file(official, explicit_offsets: bool) -> None:
    """Default target skeleton (docs/data.md#dataset-constants lengths) and the fixture's own offsets both give the official output."""
    offsets = official["target_offsets"] if explicit_offsets else None
    feats, positions = extract_features_with_positions(official["input_joints"], T2M, target_offsets=offsets)
    ref = official["features"]
    assert feats.shape == ref.shape == (169, 263)
    err = np.abs(feats - ref).max(axis=0)
    assert err.max() <= 1e-4, {k: float(err[s].max()) for k, s in T2M.feature_slices.items()}
    contacts = T2M.feature_slices["foot_contact"]
    np.testing.assert_array_equal(feats[:, contacts], ref[:, contacts])
    np.testing.assert_allclose(positions, official["global_positions"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(recover_from_ric(feats), official["recovered_joints"], atol=1e-5, rtol=0)


def test_default_target_skeleton_equals_fixture_offsets(official) -> None:
    np.testing.assert_allclose(T2M.target_offsets, official["target_offsets"], atol=1e-6, rtol=0)


def test_recover_from_rot_reproduces_positions(official) -> None:
    """FK of the 6D rotations on the target skeleton gives the processed positions (observed 2.4e-6 m)."""
    feats, positions = extract_features_with_positions(torch.from_numpy(official["input_joints"]), T2M)
    out = recover_from_rot(feats, T2M)
    torch.testing.assert_close(out, positions[:-1], atol=2e-5, rtol=0)
    torch.testing.assert_close(
        recover_from_rot(torch.from_numpy(official["features"]), T2M),
        torch.from_numpy(official["global_positions"][:-1]),
        atol=2e-5,
        rtol=0,
    )


# ---------------------------------------------------------------------------------------------- round trips


def test_retargeting_to_target_bone_lengths(shipped) -> None:
    """Limbs scaled non-uniformly (lower right leg kept, so the root scale stays 1) come back as the original
    target-skeleton motion: same bone directions, target lengths, to 1e-4 m."""
    joints = torch.from_numpy(shipped[1])
    parents = T2M.parents
    g = torch.Generator().manual_seed(0)
    factors = 0.6 + 0.8 * torch.rand(T2M.joints_num, generator=g)
    factors[[T2M.l_idx1, T2M.l_idx2]] = 1.0
    scaled = [joints[:, 0]]
    for j in range(1, T2M.joints_num):
        scaled.append(scaled[parents[j]] + factors[j] * (joints[:, j] - joints[:, parents[j]]))
    scaled = torch.stack(scaled, dim=1)
    assert (_bone_lengths(scaled, T2M) - _bone_lengths(joints, T2M)).abs().max() > 0.05

    feats, positions = extract_features_with_positions(scaled, T2M)
    _, expected = extract_features_with_positions(joints, T2M)
    torch.testing.assert_close(positions, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(recover_from_ric(feats), expected[:-1], atol=1e-4, rtol=0)
    target_lengths = torch.from_numpy(T2M.target_bone_lengths)
    torch.testing.assert_close(_bone_lengths(positions, T2M), target_lengths.expand(170, -1), atol=1e-5, rtol=0)


def test_uniformly_scaled_person_gives_identical_features(shipped) -> None:
    joints = torch.from_numpy(shipped[1])
    torch.testing.assert_close(extract_features(joints * 1.7, T2M), extract_features(joints, T2M), atol=1e-5, rtol=0)


@pytest.mark.parametrize("angle", [0.7, -2.0, math.pi])
def test_features_invariant_to_yaw_and_translation(shipped, angle: float) -> None:
    joints = torch.from_numpy(shipped[1])
    moved = qrot(yaw_quat(torch.tensor(angle)), joints) + torch.tensor([1.3, 0.4, -2.2])
    ref, ref_pos = extract_features_with_positions(joints, T2M)
    out, out_pos = extract_features_with_positions(moved, T2M)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_pos, ref_pos, atol=1e-5, rtol=0)
    contacts = T2M.feature_slices["foot_contact"]
    assert torch.equal(out[:, contacts], ref[:, contacts])


def test_batched_extraction_equals_per_clip(shipped) -> None:
    joints = torch.from_numpy(shipped[1])
    other = qrot(yaw_quat(torch.tensor(0.5)), joints.flip(0))
    both = extract_features(torch.stack([joints, other]), T2M)
    torch.testing.assert_close(both[0], extract_features(joints, T2M))
    torch.testing.assert_close(both[1], extract_features(other, T2M))


def test_quirk_root_rot_vel_sign_flips_when_facing_crosses_minus_z(shipped) -> None:
    """QUIRK(reference): root_rot_vel = arcsin(y of r_rot[t+1] ⊗ r_rot[t]⁻¹) and r_rot = qbetween(forward, +Z) has
    w ≥ 0, so on the frame where the facing crosses -Z the quaternion's sign wraps and that row's yaw velocity
    has the wrong sign. Replicated (it is the feature definition); recovery then drifts by that one step."""
    pose = torch.from_numpy(shipped[1][0])
    pose = pose - pose[0] * torch.tensor([1.0, 0.0, 1.0])
    turn = torch.linspace(0, 1.3 * math.pi, 120)  # spin in place through 180°
    joints = qrot(yaw_quat(turn)[:, None, :], pose[None])
    feats, positions = extract_features_with_positions(joints, T2M)
    rot_vel = feats[1:, 0]
    assert (rot_vel > 0).sum() == 1 and (rot_vel < 0).sum() == rot_vel.numel() - 1
    flip = int(torch.argmax(rot_vel)) + 1
    err = (recover_from_ric(feats) - positions[:-1]).abs().amax(dim=(1, 2))
    assert err[: flip + 1].max() < 1e-5 and err[flip + 1 :].min() > 1e-2


def test_kit_synthetic_motion_round_trips_through_251_features() -> None:
    """A 21-joint KIT motion (mm) made by FK: recover_from_ric(features) equals the processed positions."""
    T = 60
    g = torch.Generator().manual_seed(3)
    lengths = 150.0 + 250.0 * torch.rand(KIT.joints_num, generator=g)
    lengths[[5, 8]] = 220.0  # shoulders wider than hips (facing)
    lengths[[11, 16]] = 90.0
    offsets = torch.from_numpy(KIT.raw_offsets) * lengths[:, None]
    t = torch.arange(T, dtype=torch.float32)
    axes = torch.randn(KIT.joints_num, 3, generator=g)
    phases = torch.rand(KIT.joints_num, generator=g) * 6.0
    local = quat_from_axis_angle(axes, 0.3 * torch.sin(0.15 * t[:, None] + phases))  # (T, J, 4)
    root_yaw = yaw_quat(math.pi + 0.8 * torch.sin(0.05 * t))  # IK facing stays away from -Z
    local = torch.cat((qmul(root_yaw, local[:, 0])[:, None], local[:, 1:]), dim=1)
    root = torch.stack((300.0 * torch.sin(0.04 * t), 950.0 + 20.0 * torch.sin(0.3 * t), 15.0 * t), dim=-1)
    joints = forward_kinematics(local, root, offsets, KIT)

    feats, positions = extract_features_with_positions(joints, KIT)
    assert feats.shape == (T - 1, 251) and check_features(feats) is KIT
    torch.testing.assert_close(_bone_lengths(positions, KIT), _bone_lengths(joints, KIT), atol=1e-2, rtol=0)
    torch.testing.assert_close(recover_from_ric(feats), positions[:-1], atol=1e-3, rtol=0)  # mm
    contacts = feats[:, KIT.feature_slices["foot_contact"]]
    assert set(contacts.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(recover_from_rot(feats, KIT, offsets), positions[:-1], atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="offsets"):
        recover_from_rot(feats, KIT)


# ---------------------------------------------------------------------------------------------- IK / FK pieces


def test_ik_fk_reproduces_joints_and_quirks(shipped) -> None:
    joints = torch.from_numpy(shipped[1])
    offsets = bone_offsets(joints[0], T2M)
    quats = inverse_kinematics(joints, T2M, smooth_forward=True)
    torch.testing.assert_close(quats[0, 0], torch.tensor([1.0, 0.0, 0.0, 0.0]))  # frame-0 identity root
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(170, 22), atol=1e-5, rtol=0)
    torch.testing.assert_close(forward_kinematics(quats, joints[:, 0], offsets, T2M), joints, atol=2e-5, rtol=0)
    # The arm chains start from the root rotation (not the spine's): the shoulder's local rotation is relative
    # to the root only, so root ⊗ local maps the rest direction onto the collar bone directly.
    collar = joints[:, 14] - joints[:, 9]
    world = qmul(quats[:, 0], quats[:, 14])
    direction = qrot(world, torch.from_numpy(T2M.raw_offsets[14]).expand(170, 3))
    torch.testing.assert_close(direction, collar / collar.norm(dim=-1, keepdim=True), atol=1e-5, rtol=0)


def test_fk_cont6d_equals_quaternion_fk(shipped) -> None:
    joints = torch.from_numpy(shipped[1][:30])
    offsets = torch.from_numpy(T2M.target_offsets)
    quats = inverse_kinematics(joints, T2M, smooth_forward=False)
    for use_root in (True, False):
        torch.testing.assert_close(
            forward_kinematics_cont6d(quat_to_cont6d(quats), joints[:, 0], offsets, T2M, use_root_rotation=use_root),
            forward_kinematics(quats, joints[:, 0], offsets, T2M, use_root_rotation=use_root),
            atol=1e-5,
            rtol=0,
        )


def test_gaussian_smooth_matches_scipy() -> None:
    x = np.random.default_rng(0).standard_normal((2, 37, 3)).astype(np.float64)
    for sigma in (20.0, 2.5):
        np.testing.assert_allclose(
            gaussian_smooth(torch.from_numpy(x), sigma, dim=1).numpy(),
            gaussian_filter1d(x, sigma, axis=1, mode="nearest"),
            atol=1e-12,
            rtol=0,
        )


def test_recover_root_rot_pos_integrates_velocities() -> None:
    feats = torch.zeros(4, 263)
    feats[:, 0] = math.pi / 4  # half-angle step: yaw += 90° per frame
    feats[:, 2] = 1.0  # one unit forward (+Z in the facing frame) per frame
    feats[:, 3] = 0.9
    quat, pos = recover_root_rot_pos(feats)
    torch.testing.assert_close(quat[1], yaw_quat(torch.tensor(math.pi / 2)))
    # Row t-1's velocity is expressed in frame t's facing (r_rot_t = yaw(t·90°), world = r_rot_t⁻¹ · v):
    # yaw(-90°) maps +Z to -X, yaw(-180°) to -Z, yaw(-270°) to +X.
    expected = torch.tensor([[0.0, 0.9, 0.0], [-1.0, 0.9, 0.0], [-1.0, 0.9, -1.0], [0.0, 0.9, -1.0]])
    torch.testing.assert_close(pos, expected, atol=1e-6, rtol=0)


def test_mirror_joints(shipped) -> None:
    joints = torch.from_numpy(shipped[1])
    mirrored = mirror_joints(joints, T2M)
    torch.testing.assert_close(mirror_joints(mirrored, T2M), joints)
    torch.testing.assert_close(mirrored[:, 1, 0], -joints[:, 2, 0])
    torch.testing.assert_close(mirrored[:, 15], joints[:, 15] * torch.tensor([-1.0, 1.0, 1.0]))
    # Without retargeting the processing is mirror-equivariant.
    _, pos = extract_features_with_positions(joints, T2M, is_uniform=False)
    _, pos_m = extract_features_with_positions(mirrored, T2M, is_uniform=False)
    torch.testing.assert_close(pos_m, mirror_joints(pos, T2M), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "shape, match",
    [((10, 22), "shape"), ((10, 23, 3), "joint count"), ((2, 22, 3), "at least 3 frames"), ((10, 22, 4), "shape")],
)
def test_check_joints_rejects(shape, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_joints(np.zeros(shape, dtype=np.float32))


def test_check_inputs_accept_and_reject() -> None:
    assert check_joints(np.zeros((5, 21, 3))) is KIT
    assert check_features(torch.zeros(2, 5, 263)) is T2M
    with pytest.raises(ValueError, match="kit has 21 joints"):
        check_joints(np.zeros((5, 22, 3)), KIT)
    bad = np.zeros((5, 263), dtype=np.float32)
    bad[2, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_features(bad)
    with pytest.raises(ValueError, match="feature dimension 264"):
        check_features(np.zeros((5, 264)))
    with pytest.raises(ValueError, match="NaN"):
        extract_features(np.full((5, 22, 3), np.inf, dtype=np.float32), T2M)


def test_inputs_not_modified_and_speed(official) -> None:
    """No in-place edits; 196 frames processed and recovered in milliseconds (no per-frame Python loop)."""
    joints = torch.from_numpy(np.concatenate([official["input_joints"], official["input_joints"][:26]]))
    before = joints.clone()
    extract_features(joints, T2M)
    start = time.perf_counter()
    feats = extract_features(joints, T2M)
    recover_from_ric(feats)
    elapsed = time.perf_counter() - start
    assert torch.equal(joints, before)
    assert elapsed < 0.5, f"extract+recover took {elapsed * 1e3:.0f} ms"
