"""Foot-skate cleanup: the official remove_fs pinning rules (spec §7.5), checked against a frame-by-frame
reference loop written from the spec text, plus the leg re-solve keeping bone lengths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from utils.skeleton import get_dataset_spec
from visualization.bvh import format_bvh, parse_bvh
from visualization.foot_skate import clean_foot_skate, detect_contacts, floor_height, pin_track, two_bone_ik
from visualization.joints2bvh import bvh_to_joints, joints_to_bvh

BVH_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official_fixture" / "bvh"
T2M = get_dataset_spec("t2m")


def _loop_reference(track: np.ndarray, contact: np.ndarray, L: int = 5) -> np.ndarray:
    """Spec §7.5 step 3, literally: runs -> mean (y = 0), then each free frame in increasing order."""
    glb = track.copy()
    n = len(glb)
    s = 0
    while s < n:
        while s < n and not contact[s]:
            s += 1
        if s >= n:
            break
        t = s
        while t + 1 < n and contact[t + 1]:
            t += 1
        avg = glb[s:t + 1].mean(axis=0)
        avg[1] = 0.0
        glb[s:t + 1] = avg
        s = t + 1
    alpha = lambda x: 2 * x ** 3 - 3 * x ** 2 + 1  # noqa: E731
    lerp = lambda a, x, y: (1 - a) * x + a * y  # noqa: E731
    for s in range(n):
        if contact[s]:
            continue
        left = next((s - k - 1 for k in range(L) if s - k - 1 >= 0 and contact[s - k - 1]), None)
        if left is not None and any(contact[left + 1:s]):
            left = None
        right = next((s + k + 1 for k in range(L) if s + k + 1 < n and contact[s + k + 1]), None)
        a = lerp(alpha((s - left + 1) / (L + 1)), glb[s], glb[left]) if left is not None else None
        b = lerp(alpha((right - s + 1) / (L + 1)), glb[s], glb[right]) if right is not None else None
        if a is not None and b is not None:
            glb[s] = lerp(alpha((s - left + 1) / (right - left + 1)), b, a)
        elif a is not None:
            glb[s] = a
        elif b is not None:
            glb[s] = b
    return glb


@pytest.mark.parametrize("seed", range(4))
def test_pin_track_matches_the_reference_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    track = rng.normal(size=(60, 3)).cumsum(axis=0)
    contact = np.repeat(rng.random(15) < 0.5, 4)
    np.testing.assert_allclose(pin_track(track, contact), _loop_reference(track, contact), atol=1e-12)


def test_pin_track_holds_contact_runs_on_the_floor() -> None:
    track = np.stack([np.arange(20.0), np.full(20, 0.3), np.zeros(20)], -1)
    contact = np.zeros(20, bool)
    contact[8:12] = True
    out = pin_track(track, contact)
    np.testing.assert_allclose(out[8:12], [[9.5, 0.0, 0.0]] * 4)
    np.testing.assert_allclose(out[:2], track[:2])          # farther than 5 frames: untouched
    assert np.abs(out[7] - out[8]).max() < np.abs(track[7] - out[8]).max()


def test_two_bone_ik_keeps_lengths_and_reaches() -> None:
    rng = np.random.default_rng(0)
    hip = rng.normal(size=(50, 3))
    knee = hip + np.array([0.0, -0.4, 0.05]) + 0.02 * rng.normal(size=(50, 3))
    ankle = knee + np.array([0.0, -0.4, -0.05]) + 0.02 * rng.normal(size=(50, 3))
    target = ankle + 0.05 * rng.normal(size=(50, 3))
    new_knee, new_ankle = two_bone_ik(hip, knee, ankle, target, np.tile([0.0, 0.0, 1.0], (50, 1)))
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=-1), np.linalg.norm(knee - hip, axis=-1))
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), np.linalg.norm(ankle - knee, axis=-1))
    limb = np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)
    reach = np.linalg.norm(target - hip, axis=-1) < limb
    np.testing.assert_allclose(new_ankle[reach], target[reach], atol=1e-9)


def _real() -> np.ndarray:
    path = BVH_FIXTURE / "ik_bvh_012314.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return np.load(path)["input_joints"].astype(np.float64)


def test_cleanup_on_real_motion_reduces_skate_and_keeps_bones() -> None:
    joints = _real()
    contacts = detect_contacts(joints, T2M)
    assert contacts.shape == (196, 4) and 0.2 < contacts.mean() < 0.9
    out = clean_foot_skate(joints, T2M, contacts)
    parents = np.maximum(np.array(T2M.parents), 0)
    np.testing.assert_allclose(np.linalg.norm(out - out[:, parents], axis=-1),
                               np.linalg.norm(joints - joints[:, parents], axis=-1), atol=1e-9)
    feet = [*T2M.fid_l, *T2M.fid_r]

    def skate(x: np.ndarray) -> float:
        step = np.linalg.norm(np.diff(x[:, feet][..., [0, 2]], axis=0), axis=-1)
        both = contacts[1:] & contacts[:-1]
        return float(step[both].mean())

    # Feet (ankles pinned, toes re-aimed at fixed foot length) skate much less during contact runs: 0.38x here.
    assert skate(out) < 0.5 * skate(joints)
    np.testing.assert_allclose(out[:, 0, 1], joints[:, 0, 1] - floor_height(joints, T2M))
    # Through the BVH writer (motion offsets) the cleaned pose is what the file holds.
    motion = joints_to_bvh(joints, T2M, offsets="motion", foot_cleanup=True, contacts=contacts)
    assert np.abs(bvh_to_joints(parse_bvh(format_bvh(motion)), T2M) - out).max() < 1e-3


def test_bad_contacts_shape() -> None:
    with pytest.raises(ValueError, match="contacts must have shape"):
        clean_foot_skate(np.zeros((10, 22, 3)), T2M, np.zeros((9, 4)))
