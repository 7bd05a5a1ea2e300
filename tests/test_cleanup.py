"""Physical clean-up (utils/cleanup.py) on real demo clips with known perturbations, and its command lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from utils.cleanup import (
    CleanupConfig,
    cleaned_features,
    cleanup_at_origin,
    cleanup_motion,
    detect_contacts,
    hover_landing,
    lock_offsets,
    pin_to_targets,
    two_bone_ik,
    within_reach,
)
from utils.cli import run_cli
from utils.motion import recover_from_ric
from utils.physical import GRAVITY, contact_frames, foot_joints, hover_frames, jitter, physical_metrics, skating
from utils.skeleton import get_dataset_spec

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO / "dataset_demo" / "HumanML3D" / "new_joints"
T2M = get_dataset_spec("t2m")
PARENTS = list(T2M.parents)


def clip(name: str) -> np.ndarray:
    return np.load(CLIPS / f"{name}.npy").astype(np.float64)


def lengths(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, 1:] - x[:, PARENTS[1:]], axis=-1)


def jittery(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The clip with 1.5 cm of white noise on every joint (what decoded generations look like)."""
    return x + 0.015 * np.random.default_rng(seed).normal(size=x.shape)


def test_rigid_motion_keeps_its_bone_lengths_and_shape() -> None:
    walk = clip("000000")
    out = cleanup_motion(walk, T2M)
    assert out.shape == walk.shape and out.dtype == walk.dtype
    np.testing.assert_allclose(lengths(out), lengths(walk), atol=1e-6)
    assert np.linalg.norm(out - walk, axis=-1).mean() < 0.02  # a clean real walk barely moves
    assert cleanup_motion(walk.astype(np.float32), T2M).dtype == np.float32


# walk, punch, dance: jerk at least halves; run: fast joints are filtered lightly on purpose (kicks keep peaks).
@pytest.mark.parametrize("name, ratio", [("000000", 0.5), ("000016", 0.5), ("000011", 0.5), ("000006", 0.7)])
def test_jitter_drops_and_the_motion_stays(name: str, ratio: float) -> None:
    gt = clip(name)
    noisy = jittery(gt)
    out = cleanup_motion(noisy, T2M)
    assert jitter(out, T2M.fps)[0] < ratio * jitter(noisy, T2M.fps)[0]
    # Within 3 cm of the clean clip on average (the noise itself is 2.4 cm).
    assert np.linalg.norm(out - gt, axis=-1).mean() < 0.03
    # Bone-length jitter is low-passed, the mean length per bone kept within 1 %.
    assert lengths(out).std(axis=0).mean() < 0.5 * lengths(noisy).std(axis=0).mean()
    np.testing.assert_allclose(lengths(out).mean(axis=0), lengths(noisy).mean(axis=0), rtol=0.02)


def test_fast_intended_motion_is_spared() -> None:
    """The kick's foot keeps its peak height (1.33 m, reached in one frame at 7 m/s) within 4 cm, the jump its
    apex (the filter narrows for fast joints; the floor snap is interpolated across flight)."""
    kick = clip("000015")
    out = cleanup_motion(jittery(kick), T2M)
    toe = T2M.fid_r[1]
    assert abs(out[:, toe, 1].max() - kick[:, toe, 1].max()) < 0.04
    jump = clip("000007")
    out = cleanup_motion(jittery(jump), T2M)
    assert abs(out[:, 0, 1].max() - jump[:, 0, 1].max()) < 0.03


def test_sliding_feet_are_locked_with_exact_legs() -> None:
    """A still pose whose body slides at 0.3 m/s on the floor: the feet stay put, the legs bend to follow."""
    pose = clip("000016")[0]
    frames = 30
    sliding = np.repeat(pose[None], frames, axis=0)
    sliding[..., 0] += 0.3 * np.arange(frames)[:, None] / T2M.fps
    before = skating(sliding, foot_joints(T2M), T2M.fps)[1]
    out = cleanup_motion(sliding, T2M)
    contacts = detect_contacts(out, T2M, T2M.fps)
    assert contacts[5:25].all()
    feet = out[5:25][:, list(foot_joints(T2M))]
    assert np.abs(np.diff(feet[..., [0, 2]], axis=0)).max() < 1e-9  # locked: no horizontal motion at all
    assert skating(out, foot_joints(T2M), T2M.fps)[1] < 0.2 * before
    np.testing.assert_allclose(lengths(out), lengths(sliding), atol=1e-9)
    assert np.abs(out[:, 0, 0] - sliding[:, 0, 0]).max() < 0.01  # the body itself still slides


def test_a_foot_sliding_further_than_the_leg_reaches_stays_on_the_floor() -> None:
    """A still pose sliding 1.7 m in 2 s (0.85 m/s, slow enough to count as contact): the run's mean is out of
    the leg's reach at both ends, so the held ankle gives way there instead of being lifted off the floor
    (generated walks did that: a stance foot pulled 40 cm up)."""
    pose = clip("000016")[0]
    frames = 40
    sliding = np.repeat(pose[None], frames, axis=0)
    sliding[..., 0] += 0.85 * np.arange(frames)[:, None] / T2M.fps
    out = cleanup_motion(sliding, T2M)
    for ankle, _ in (T2M.fid_l, T2M.fid_r):
        assert (out[:, ankle, 1] - sliding[:, ankle, 1]).max() < 0.01
    assert detect_contacts(out, T2M, T2M.fps)[:, [0, 2]].all(axis=0).any()  # a contact lasts the whole slide
    feet = list(foot_joints(T2M))
    assert skating(out, feet, T2M.fps)[1] < 0.7 * skating(sliding, feet, T2M.fps)[1]  # still held where it can be
    np.testing.assert_allclose(lengths(out), lengths(sliding), atol=1e-9)


def test_within_reach_closed_form() -> None:
    """Hip 1 m up, reach 1 m, target at 0.1 m height: the horizontal reach there is sqrt(1 - 0.9^2)."""
    hip = np.array([[0.0, 1.0, 0.0]] * 3)
    start = np.array([[0.1, 0.1, 0.0]] * 3)
    target = np.array([[2.0, 0.1, 0.0], [0.3, 0.1, 0.2], [0.0, -1.5, 3.0]])
    out = within_reach(hip, start, target, np.ones(3))
    np.testing.assert_allclose(out[0], [np.sqrt(1 - 0.9**2), 0.1, 0.0])  # on the reach, on the line to the target
    np.testing.assert_array_equal(out[1], target[1])  # in reach: as it was
    np.testing.assert_array_equal(out[2], [0.1, -1.5, 0.0])  # that height is out of reach anywhere: the start


def test_lock_offsets_hold_the_run_mean_and_ease_out() -> None:
    track = np.stack([np.arange(20.0) * 0.01, np.zeros(20), np.zeros(20)], -1)
    contact = np.zeros(20, bool)
    contact[8:12] = True
    offset, weight = lock_offsets(track, contact, blend=3)
    held = track + offset
    np.testing.assert_allclose(held[8:12, 0], 0.095)  # the run's mean
    np.testing.assert_array_equal(weight[8:12], 1.0)
    assert weight[:4].max() == 0.0 and weight[16:].max() == 0.0  # beyond `blend` frames: untouched
    assert 0.0 < weight[6] < weight[7] < 1.0


def test_two_bone_ik_keeps_lengths_reaches_and_stays_in_the_bend_plane() -> None:
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
    assert reach.sum() > 10
    np.testing.assert_allclose(new_ankle[reach], target[reach], atol=1e-9)
    # The new knee lies in the plane spanned by the hip -> target line and the old knee.
    normal = np.cross(target - hip, knee - hip)
    assert np.abs(((new_knee - hip) * normal).sum(-1)).max() < 1e-9


def test_cleanup_removes_penetration_and_keeps_contacts_on_the_floor() -> None:
    walk = jittery(clip("000001"))
    walk[..., 1] -= 0.04  # sunk 4 cm
    out = cleanup_motion(walk, T2M)
    before, after = physical_metrics(walk, T2M), physical_metrics(out, T2M)
    assert before.penetration_mean > 0.02 and after.penetration_mean < 0.005
    assert after.skate_ratio < 0.5 * before.skate_ratio
    assert contact_frames(out, foot_joints(T2M), T2M.fps).mean() > 0.3


def test_a_hovering_body_is_brought_down_and_a_flight_keeps_its_arc() -> None:
    """A cartwheel held 20 cm up for 0.75 s while its hands are planted hovers (it is off the floor and does not
    fall): the clean-up puts it back where the clip was (its first and last frames partly: the floor offset is
    smoothed) and it no longer hovers. Held 60 cm up, further than ``max_landing``, it is left; so is a walk
    held 25 cm up (its stance foot at rest: it may walk over a platform). Thrown 0.7 m up along a free-fall arc
    it is a jump: the clean-up is the same as without ``land_hovers`` and the arc stays. A body standing still
    on a 30 cm box stays there; gliding 25 cm up with no limb slow enough to plant, it would slide on the floor
    if lowered, and is left as without ``land_hovers``."""
    walk, cartwheel = clip("000000")[:80], clip("000009")[:80]
    no_landing = CleanupConfig(land_hovers=False)
    feet = foot_joints(T2M)
    held, high, platform = cartwheel.copy(), cartwheel.copy(), walk.copy()
    held[20:35, :, 1] += 0.2
    high[20:35, :, 1] += 0.6
    platform[20:35, :, 1] += 0.25
    for lifted in (held, high, platform):
        assert hover_frames(lifted, feet, T2M.fps)[20:35].all()
    landed = cleanup_motion(held, T2M)
    assert not hover_frames(landed, feet, T2M.fps).any()
    np.testing.assert_allclose(landed[24:31, :, 1].min(axis=1), cartwheel[24:31, :, 1].min(axis=1), atol=0.03)
    assert cleanup_motion(held, T2M, config=no_landing)[22:33, :, 1].min() > 0.15  # left up
    for lifted in (high, platform):
        np.testing.assert_array_equal(cleanup_motion(lifted, T2M), cleanup_motion(lifted, T2M, config=no_landing))
    t = np.arange(15) / T2M.fps
    arc = walk.copy()
    arc[20:35, :, 1] += (GRAVITY / 2 * t * (0.75 - t))[:, None]  # up to g * 0.75^2 / 8 = 0.69 m
    jumped = cleanup_motion(arc, T2M)
    np.testing.assert_array_equal(jumped, cleanup_motion(arc, T2M, config=no_landing))
    assert jumped[20:35, :, 1].min(axis=1).max() > 0.6
    box = np.repeat(walk[:1], 60, axis=0)
    box[10:, :, 1] += 0.3
    np.testing.assert_allclose(cleanup_motion(box, T2M)[20:50], box[20:50], atol=1e-6)
    gliding = box.copy()  # 25 cm up and every joint moving at 2 m/s: no foot or hand could hold it
    gliding[10:, :, 1] -= 0.05
    gliding[..., 2] += 2.0 * np.arange(60)[:, None] / T2M.fps
    assert hover_frames(gliding, feet, T2M.fps)[10:].all()
    np.testing.assert_array_equal(cleanup_motion(gliding, T2M), cleanup_motion(gliding, T2M, config=no_landing))


def test_hover_landing_touches_the_floor_once_in_every_flight_window() -> None:
    """Closed form: each hovering frame is lowered by the lowest height in a MIN_FLIGHT window around it (2 frames
    either side at 20 fps) inside its run, so strides keep their shape: a floating gait whose lowest joint dips
    to 10 cm every 8 frames is lowered by 10 cm where a dip is in reach, more between; a flat hover is pressed
    flat."""
    stride = 0.10 + 0.05 * (1 - np.cos(2 * np.pi * np.arange(24) / 8))  # 10..20 cm, dips at frames 0, 8, 16
    lowest = np.concatenate([[0.0], stride, [0.0]])
    hover = lowest > 0.05
    offset = hover_landing(lowest, hover, 20.0)
    want = -np.array([stride[max(0, t - 2) : t + 3].min() for t in range(24)])
    np.testing.assert_allclose(offset[1:-1], want, atol=1e-12)
    assert offset[0] == offset[-1] == 0.0 and (lowest + offset)[1:-1].min() == pytest.approx(0.0, abs=1e-12)
    assert (lowest + offset)[1:-1].max() < 0.1  # never more than 2 frames' rise of a stride stays
    flat = np.full(10, 0.3)
    np.testing.assert_allclose(hover_landing(flat, flat > 0, 20.0), -0.3)


def test_pin_to_targets_closed_form() -> None:
    """Per-frame translations: the mean residual of each frame's targets on each axis, linear between such frames,
    held outside them; free axes are not moved."""
    joints = np.random.default_rng(0).normal(size=(10, 22, 3)).astype(np.float32)
    targets = np.full((8, 22, 3), np.nan, np.float32)
    targets[2, 0, 0] = joints[2, 0, 0] + 0.1  # x only
    targets[6, 0, 0] = joints[6, 0, 0] + 0.3
    targets[6, 20, 0] = joints[6, 20, 0] + 0.5  # two joints at frame 6: the mean residual, 0.4
    pinned = pin_to_targets(joints, targets)
    shift = pinned - joints
    np.testing.assert_allclose(shift[..., 1:], 0.0, atol=1e-7)
    np.testing.assert_allclose(shift[:, 0, 0], [0.1, 0.1, 0.1, 0.175, 0.25, 0.325, 0.4, 0.4, 0.4, 0.4], atol=1e-6)
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1], shift.shape), atol=1e-6)  # rigid per frame


def test_cleanup_keeps_a_controlled_path() -> None:
    """With a control's targets the clean-up still smooths a jittered motion, but a dense pelvis path (the clip's
    own) ends on its targets, where without them the clean-up moves it."""
    joints = clip("000000").astype(np.float32)[:80]
    jittered = joints + np.random.default_rng(3).normal(scale=0.01, size=joints.shape).astype(np.float32)
    targets = np.full_like(joints, np.nan)
    targets[:, 0] = joints[:, 0]
    free, pinned = cleanup_at_origin(jittered, T2M), cleanup_at_origin(jittered, T2M, targets=targets)
    assert np.linalg.norm(free[:, 0] - targets[:, 0], axis=-1).mean() > 0.003
    np.testing.assert_allclose(pinned[:, 0], targets[:, 0], atol=1e-5)
    assert jitter(pinned, T2M.fps)[0] < 0.6 * jitter(jittered, T2M.fps)[0]


def test_cleaned_features_decode_to_the_cleaned_joints() -> None:
    """Unchanged joints give the features back; a body lifted by 3 cm adds 3 cm to the root and joint heights
    and nothing else; a real clean-up's features decode to the cleaned joints (frame-0 root at the origin)."""
    feats = np.load(CLIPS.parent / "new_joint_vecs" / "000001.npy")
    raw = recover_from_ric(feats.astype(np.float64), T2M.joints_num)
    np.testing.assert_allclose(cleaned_features(feats, raw, T2M)[:, :-4], feats[:, :-4], atol=1e-5)
    change = cleaned_features(feats, raw + [0.0, 0.03, 0.0], T2M).astype(np.float64) - feats
    heights = [3, *range(5, 4 + 3 * (T2M.joints_num - 1), 3)]
    np.testing.assert_allclose(change[:, heights], 0.03, atol=1e-5)
    assert np.abs(np.delete(change, heights, axis=1)[:, :-4]).max() < 1e-5
    cleaned = cleanup_motion(jittery(raw), T2M)
    decoded = recover_from_ric(cleaned_features(feats, cleaned, T2M).astype(np.float64), T2M.joints_num)
    np.testing.assert_allclose(decoded, cleaned - cleaned[:1, :1] * [1.0, 0.0, 1.0], atol=1e-4)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 22, 3)), "at least 4 frames"),
        (np.full((10, 22, 3), np.inf), "NaN"),
        (np.zeros((10, 21, 3)), "shape"),
    ],
)
def test_bad_input(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cleanup_motion(bad, T2M)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        CleanupConfig().blend = 2  # type: ignore[misc]


# ---- command lines ------------------------------------------------------------------------------------------
def _exit_line(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((40, 20, 3)), "joint count 20"),
        (np.full((40, 22, 3), np.nan), "NaN"),
        (np.zeros((1, 22, 3)), "at least"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys, bad: np.ndarray, message: str) -> None:
    from visualization.convert import main as convert
    from visualization.physical import main as measure

    src = tmp_path / "in.npy"
    np.save(src, bad)
    out = tmp_path / "out.npy"
    out.write_bytes(b"keep me")
    assert message in _exit_line(convert, [str(src), str(out), "--cleanup"], capsys)
    assert out.read_bytes() == b"keep me"
    assert message in _exit_line(measure, [str(src), "--cleanup"], capsys)


def test_convert_cleanup_npy_and_bvh_round_trip(tmp_path: Path, capsys) -> None:
    from visualization.convert import main as convert
    from visualization.physical import main as measure

    src = tmp_path / "walk.npy"
    np.save(src, jittery(clip("000000")).astype(np.float32))
    convert([str(src), str(tmp_path / "clean.npy"), "--cleanup"])  # joints in -> cleaned joints out
    cleaned = np.load(tmp_path / "clean.npy")
    np.testing.assert_allclose(cleaned, cleanup_motion(np.load(src), T2M), atol=1e-6)
    convert([str(src), str(tmp_path / "clean.bvh"), "--cleanup", "--offsets", "motion"])
    convert([str(tmp_path / "clean.bvh"), str(tmp_path / "back.npy"), "--to", "joints"])
    # The BVH skeleton is rigid (one offset per bone); it holds the cleaned bone directions.
    back = np.load(tmp_path / "back.npy")
    unit = lambda x: (x[:, 1:] - x[:, PARENTS[1:]]) / lengths(x)[..., None]  # noqa: E731
    angle = np.degrees(np.arccos(np.clip((unit(back) * unit(cleaned)).sum(-1), -1, 1)))
    assert angle.mean() < 2.0 and np.percentile(angle, 99) < 15.0, (angle.mean(), np.percentile(angle, 99))
    records = measure([str(src), str(tmp_path / "clean.bvh"), "--cleanup", "--json", str(tmp_path / "m.json")])
    assert records[0]["metrics"]["jerk"] < 0.5 * records[0]["raw_metrics"]["jerk"]
    assert json.loads((tmp_path / "m.json").read_text())["motions"][1]["file"].endswith("clean.bvh")
    assert "cleaned" in capsys.readouterr().out
