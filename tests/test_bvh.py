"""BVH reader/writer and the analytic joints -> BVH export.

Golden data (skipped when ../shared is absent): the official template and the official exports of a real
196-frame motion in ../shared/reference/official_fixture/bvh (see its README: input_joints = new_joints/012314
ping-pong extended; joints_plain = official FK of the plain export). Synthetic motions cover the rest.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from utils.quaternion import euler_to_quat, qrot, quat_to_euler, yaw_quat
from utils.skeleton import get_dataset_spec
from visualization.bvh import (
    BvhMotion,
    continuous_euler,
    format_bvh,
    forward_kinematics,
    parse_bvh,
    read_bvh,
    write_bvh,
)
from visualization.export import MotionWriter
from visualization.joints2bvh import (
    T2M_BVH_NAMES,
    T2M_BVH_PARENTS,
    T2M_TEMPLATE_OFFSETS,
    bvh_to_joints,
    joints_to_bvh,
    rig_for,
    save_bvh,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
BVH_FIXTURE = SHARED / "reference" / "official_fixture" / "bvh"
TEMPLATE = SHARED / "reference" / "momask" / "template.bvh"
T2M, KIT = get_dataset_spec("t2m"), get_dataset_spec("kit")


def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def _real_joints() -> np.ndarray:
    return np.load(_shared(BVH_FIXTURE / "ik_bvh_012314.npz"))["input_joints"].astype(np.float64)


def _rotate_y(joints: np.ndarray, degrees: float) -> np.ndarray:
    return qrot(yaw_quat(np.full(joints.shape[:2], np.deg2rad(degrees))), joints)


def _bone_dirs(joints: np.ndarray, spec=T2M) -> np.ndarray:
    parents = np.array(spec.parents)
    v = (joints - joints[:, np.maximum(parents, 0)])[:, 1:]
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _angle_errors(a: np.ndarray, b: np.ndarray, spec=T2M) -> np.ndarray:
    """Per frame and bone (world, parent -> child) angle between two joint sequences, degrees: (T, J-1)."""
    cos = (_bone_dirs(a, spec) * _bone_dirs(b, spec)).sum(-1)
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def _synthetic(
    spec, frames: int = 40, seed: int = 0, scale: float = 1.0, offsets: np.ndarray | None = None
) -> np.ndarray:
    """Joints (T, J, 3) in dataset order: FK of smooth random local rotations on the dataset's BVH rig, with
    random bone lengths (or the given rest ``offsets``); rigid by construction."""
    rig = rig_for(spec)
    rng = np.random.default_rng(seed)
    if offsets is None:
        offsets = rig.rest_dirs * rng.uniform(0.05, 0.4, len(rig.names))[:, None] * scale
    t = np.linspace(0, 1, frames)[:, None, None]
    freq = rng.uniform(0.3, 1.5, (1, len(rig.names), 3))
    angles = 45 * np.sin(2 * np.pi * (freq * t + rng.uniform(0, 1, (1, len(rig.names), 3))))
    positions = np.repeat(offsets[None], frames, axis=0)
    positions[:, 0] = np.concatenate([np.sin(3 * t[:, 0]), 0.9 * np.ones((frames, 1)), 2 * t[:, 0]], -1) * scale
    channels = tuple(
        ("Xposition", "Yposition", "Zposition") * (j == 0) + ("Zrotation", "Yrotation", "Xrotation")
        for j in range(len(rig.names))
    )
    motion = BvhMotion(rig.names, rig.parents, offsets, channels, angles, positions, 0.05)
    return forward_kinematics(motion)[0][:, rig.bvh_index]


# ---------------------------------------------------------------------------------------------------------------
# Reader / writer


@pytest.mark.parametrize("name", ["joints2bvh_plain_012314.bvh", "joints2bvh_footik_012314.bvh"])
def test_writer_reproduces_official_files_byte_for_byte(name: str) -> None:
    path = _shared(BVH_FIXTURE / name)
    assert format_bvh(read_bvh(path)) == path.read_text()


def test_reader_fk_matches_official_positions() -> None:
    """Official FK output (joints_plain, SMPL order) of the official plain export equals our reader + FK."""
    ref = np.load(_shared(BVH_FIXTURE / "ik_bvh_012314.npz"))["joints_plain"]
    motion = read_bvh(BVH_FIXTURE / "joints2bvh_plain_012314.bvh")
    assert motion.frame_time == pytest.approx(0.05) and motion.num_frames == 196
    np.testing.assert_allclose(bvh_to_joints(motion, T2M), ref, atol=1e-5)


def test_t2m_rig_is_the_official_template() -> None:
    template = read_bvh(_shared(TEMPLATE))
    assert template.names == T2M_BVH_NAMES and template.parents == T2M_BVH_PARENTS
    np.testing.assert_allclose(template.offsets, T2M_TEMPLATE_OFFSETS, atol=1e-9)
    motion = joints_to_bvh(_synthetic(T2M, frames=3), T2M)
    assert motion.channels == template.channels and sorted(motion.end_sites) == sorted(template.end_sites)
    assert format_bvh(motion).split("MOTION")[0] == TEMPLATE.read_text().split("MOTION")[0]


def test_channel_orders_and_position_channels_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    offsets = rng.normal(size=(3, 3))
    channels = (
        ("Zposition", "Xposition", "Yposition", "Xrotation", "Yrotation", "Zrotation"),
        ("Yrotation", "Xrotation", "Zrotation"),
        ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
    )
    rot = rng.uniform(-170, 170, size=(5, 3, 3))
    pos = np.repeat(offsets[None], 5, axis=0)
    pos[:, [0, 2]] = rng.normal(size=(5, 2, 3))
    motion = BvhMotion(("a", "b", "c"), (-1, 0, 1), offsets, channels, rot, pos, 1 / 30, {2: np.array([0.0, 1.0, 0.0])})
    back = read_bvh(write_bvh(tmp_path / "m.bvh", motion))
    assert back.channels == channels and back.rotation_order(0) == "xyz" and back.rotation_order(1) == "yxz"
    np.testing.assert_allclose(back.rotations, rot, atol=1e-6)
    np.testing.assert_allclose(back.positions, pos, atol=1e-6)
    np.testing.assert_allclose(back.end_sites[2], [0, 1, 0])

    # FK by hand for joint 1 with order "yxz": R = Ry Rx Rz.
    def rm(axis: int, deg: np.ndarray) -> np.ndarray:
        c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
        m = np.zeros(deg.shape + (3, 3))
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m[..., axis, axis] = 1
        m[..., i, i], m[..., j, j], m[..., i, j], m[..., j, i] = c, c, -s, s
        return m

    r0 = rm(0, rot[:, 0, 0]) @ rm(1, rot[:, 0, 1]) @ rm(2, rot[:, 0, 2])
    glob, _ = forward_kinematics(back)
    np.testing.assert_allclose(glob[:, 1], pos[:, 0] + (r0 @ offsets[1][:, None])[..., 0], atol=1e-5)


@pytest.mark.parametrize(
    "text, match",
    [
        ("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Xrotation Yrotation Zrotation\n}\n", "no MOTION"),
        (
            "HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Xrotation Yrotation Zrotation\n}\nMOTION\nFrames: 2\n"
            "Frame Time: 0.1\n1 2 3\n",
            "expected 2 frames x 3 channels",
        ),
        ("HIERARCHY\nROOT a\n{\nOFFSET 0 0\n}\nMOTION\nFrames: 0\nFrame Time: 0.1\n", "malformed"),
        (
            "HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 1 Wrotation\n}\nMOTION\nFrames: 0\nFrame Time: 0.1\n",
            "unknown channels",
        ),
    ],
)
def test_malformed_bvh_is_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_bvh(text, source="broken.bvh")


# ---------------------------------------------------------------------------------------------------------------
# joints -> BVH


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_motion_offsets_reproduce_real_positions(tmp_path: Path, degrees: int) -> None:
    """Mode (a): read back + FK gives the input joints to < 1 mm, for any facing direction."""
    joints = _rotate_y(_real_joints(), degrees)
    back = bvh_to_joints(read_bvh(save_bvh(joints, tmp_path / "a.bvh", T2M, offsets="motion")), T2M)
    assert np.abs(back - joints).max() < 1e-3


def test_motion_offsets_say_how_far_fk_is_from_changing_bones(tmp_path: Path, caplog) -> None:
    """A mocap skeleton (rigid) exports silently; a forearm that grows by 20 cm over the clip cannot be one BVH
    bone: FK lands |L(t) - mean L| from the wrist, 10 cm at both ends, and the writer says so."""
    joints = _real_joints()
    left_elbow, left_wrist = 18, 20  # a one-child bone ending in a leaf
    forearm = joints[:, left_wrist] - joints[:, left_elbow]
    grown = joints.copy()
    grown[:, left_wrist] += (
        forearm / np.linalg.norm(forearm, axis=-1, keepdims=True) * np.linspace(0, 0.2, len(joints))[:, None]
    )
    writer = MotionWriter(tmp_path, T2M, ["bvh"], bvh_offsets="motion")
    features = np.zeros((len(joints), T2M.dim_pose), np.float32)
    with caplog.at_level(logging.INFO, logger="visualization.export"):
        writer.write(SimpleNamespace(caption="rigid", features=features, joints=joints), sample=0, repeat=0)
        assert "FK is up to" not in caplog.text
        writer.write(SimpleNamespace(caption="grown", features=features, joints=grown), sample=1, repeat=0)
    err, vary = map(float, re.search(r"FK is up to ([\d.]+) cm .* vary by up to ([\d.]+) cm", caplog.text).groups())
    assert abs(err - 10.0) <= 0.2 and abs(vary - 20.0) <= 0.2, (err, vary)
    back = bvh_to_joints(read_bvh(tmp_path / "animations/1/sample1_repeat0_len196.bvh"), T2M)
    assert abs(np.linalg.norm(back - grown, axis=-1).max() - err / 100) <= 1e-3


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_template_offsets_keep_bone_directions(tmp_path: Path, degrees: int) -> None:
    """Mode (b), official template: world bone directions within mean 1 deg / p99 10 deg of the input
    (official export of the same motion: mean 4.0, p99 14.4 deg). Root position kept exactly."""
    joints = _rotate_y(_real_joints(), degrees)
    back = bvh_to_joints(read_bvh(save_bvh(joints, tmp_path / "b.bvh", T2M)), T2M)
    err = _angle_errors(back, joints)
    assert err.mean() < 1.0 and np.percentile(err, 99) < 10.0, (err.mean(), np.percentile(err, 99))
    np.testing.assert_allclose(back[:, 0], joints[:, 0], atol=1e-5)


def test_template_mode_beats_the_official_export() -> None:
    """Same input, same template skeleton: the official iterative-IK export (joints_plain, its own FK) is off by
    about 4 deg per bone on average; ours must be several times closer, and keep the same root track."""
    data = np.load(_shared(BVH_FIXTURE / "ik_bvh_012314.npz"))
    joints = data["input_joints"].astype(np.float64)
    official = _angle_errors(data["joints_plain"], joints)
    ours = _angle_errors(bvh_to_joints(joints_to_bvh(joints, T2M), T2M), joints)
    assert 3.0 < official.mean() < 5.0
    assert ours.mean() < official.mean() / 4 and ours.max() < official.max()
    np.testing.assert_allclose(
        bvh_to_joints(joints_to_bvh(joints, T2M), T2M)[:, 0], data["joints_plain"][:, 0], atol=1e-5
    )


def test_new_joints_file_round_trip(tmp_path: Path) -> None:
    joints = np.load(_shared(SHARED / "reference" / "humanml3d" / "new_joints" / "012314.npy")).astype(np.float64)
    motion = joints_to_bvh(joints, T2M, offsets="motion")
    assert motion.frame_time == pytest.approx(1 / 20) and motion.num_frames == 170
    assert np.abs(bvh_to_joints(parse_bvh(format_bvh(motion)), T2M) - joints).max() < 1e-3


def test_no_flips_on_real_motion() -> None:
    """Per-frame global rotation change of each joint never exceeds, by more than 60 deg, the change of the
    input bone directions that joint controls (a twist flip would be ~180 deg); typical excess is tiny."""
    joints = _real_joints()
    rig = rig_for(T2M)
    _, glob = forward_kinematics(joints_to_bvh(joints, T2M, offsets="motion"))
    targets = joints[:, list(rig.source_index)]

    def change(v: np.ndarray) -> np.ndarray:
        v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        return np.rad2deg(np.arccos(np.clip((v[1:] * v[:-1]).sum(-1), -1, 1)))

    excess = []
    for j, kids in enumerate(rig.children):
        if not kids:
            continue
        bones = [targets[:, c] - targets[:, j] for c in kids]
        if j in rig.hinges:
            c = kids[0]
            bones.append(targets[:, rig.children[c][0]] - targets[:, c])
        dot = np.abs((glob[1:, j] * glob[:-1, j]).sum(-1)).clip(0, 1)
        excess.append(np.rad2deg(2 * np.arccos(dot)) - np.max([change(b) for b in bones], axis=0))
    excess = np.stack(excess)
    assert excess.max() < 60.0, excess.max()
    assert np.percentile(excess, 99) < 15.0, np.percentile(excess, 99)


def test_synthetic_t2m_on_template_is_exact() -> None:
    """A motion made on the template skeleton itself goes through template mode unchanged."""
    joints = _synthetic(T2M, seed=3, offsets=T2M_TEMPLATE_OFFSETS)
    back = bvh_to_joints(parse_bvh(format_bvh(joints_to_bvh(joints, T2M, offsets="template"))), T2M)
    assert np.abs(back - joints).max() < 1e-4


def test_synthetic_t2m_motion_offsets_are_exact() -> None:
    """Random bone lengths (no shared data needed): mode (a) reproduces positions."""
    joints = _synthetic(T2M, seed=6)
    back = bvh_to_joints(parse_bvh(format_bvh(joints_to_bvh(joints, T2M, offsets="motion"))), T2M)
    assert np.abs(back - joints).max() < 1e-4


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_kit_synthetic_motion_exports_and_reads_back(tmp_path: Path, degrees: int) -> None:
    joints = _rotate_y(_synthetic(KIT, seed=2, scale=1000.0), degrees)  # KIT is in millimetres
    path = save_bvh(joints, tmp_path / "kit.bvh", KIT)
    motion = read_bvh(path)
    assert motion.frame_time == pytest.approx(1 / 12.5)
    assert motion.names[0] == "root" and len(motion.names) == 21
    assert np.abs(bvh_to_joints(motion, KIT) - joints).max() < 1.0  # < 1 mm


@pytest.mark.parametrize("order", ["zyx", "xyz", "yxz"])
def test_continuous_euler_recovers_a_smooth_track(order: str) -> None:
    """A smooth Euler track that winds past +-180 and tilts through the middle-angle limit (90 deg) comes back
    from quaternion -> canonical Euler -> continuous_euler unchanged (up to whole turns)."""
    t = np.linspace(0.0, 1.0, 41)
    truth = np.stack([400 * t - 30, 170 * t + 1.3, -250 * t + 10], -1)  # degrees, (T, 3)
    canonical = np.rad2deg(quat_to_euler(euler_to_quat(np.deg2rad(truth), order), order))
    assert np.abs(np.diff(canonical, axis=0)).max() > 90  # the raw track does jump
    track = continuous_euler(canonical)
    turns = (track - truth) / 360.0
    np.testing.assert_allclose(turns, np.round(turns[:1]).repeat(len(t), 0), atol=1e-6)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((5, 22, 3), np.nan), "NaN"),
        (np.zeros((1, 22, 3)), "at least 2 frames"),
        (np.zeros((5, 19, 3)), "joint count 19"),
    ],
)
def test_bad_joints_are_clear_errors(tmp_path: Path, bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        save_bvh(bad, tmp_path / "x.bvh")
    assert not list(tmp_path.iterdir())


def test_kit_has_no_template_and_modes_are_checked() -> None:
    with pytest.raises(ValueError, match="no BVH template"):
        joints_to_bvh(_synthetic(KIT, frames=3), KIT, offsets="template")
    with pytest.raises(ValueError, match="offsets must be"):
        joints_to_bvh(_synthetic(T2M, frames=3), T2M, offsets="smpl")  # type: ignore[arg-type]


def test_convert_cli_features_to_bvh_and_back(tmp_path: Path) -> None:
    """visualization.convert: features .npy -> .bvh (motion offsets) -> joints .npy equals recover_from_ric."""
    from utils.motion import recover_from_ric
    from visualization.convert import main

    feats = SHARED / "reference" / "humanml3d" / "new_joint_vecs" / "012314.npy"
    _shared(feats)
    main([str(feats), str(tmp_path / "m.bvh"), "--offsets", "motion"])
    main([str(tmp_path / "m.bvh"), str(tmp_path / "j.npy"), "--to", "joints"])
    expected = recover_from_ric(np.load(feats), 22)
    assert np.abs(np.load(tmp_path / "j.npy") - expected).max() < 1e-3
    main([str(feats), str(tmp_path / "ik.bvh"), "--foot_cleanup"])  # contacts from the feature channels
    assert read_bvh(tmp_path / "ik.bvh").num_frames == 170


def test_convert_rejects_foreign_bvh(tmp_path: Path) -> None:
    from visualization.convert import main

    motion = BvhMotion(
        ("a", "b"),
        (-1, 0),
        np.array([[0.0, 0, 0], [0, 1, 0]]),
        (
            ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"),
            ("Zrotation", "Yrotation", "Xrotation"),
        ),
        np.zeros((3, 2, 3)),
        np.zeros((3, 2, 3)),
        0.05,
    )
    write_bvh(tmp_path / "foreign.bvh", motion)
    with pytest.raises(ValueError, match="match no rig"):
        main([str(tmp_path / "foreign.bvh"), str(tmp_path / "x.npy")])
    assert not (tmp_path / "x.npy").exists()
